"""The FastAPI app. Routes parse the request and call `Service`; nothing more.

  POST /v1/audio/transcriptions  OpenAI audio API multipart form (file, model, response_format, language,
                                 temperature, prompt) + the DecodeOptions fields offered on FORM
                                 (decode_params.py)
  POST /v1/transcribe            raw audio bytes as the body; the DecodeOptions fields offered on QUERY as
                                 query parameters (decode_params.py)
  GET  /v1/models, /healthz, /readyz, /metrics"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..runtime import Transcriber
from ..spec.decode_options import FORM, QUERY
from .config import ServeConfig
from .connections import fit_connection_cap, guarded_protocol, install_accept_error_filter
from .decode_params import with_decode_params
from .errors import ApiError, WarmUpFailed
from .guards import ApiKeyMiddleware, ReadTimeoutMiddleware, RequestIdMiddleware
from .middleware import BodyLimitMiddleware, MetricsMiddleware
from .responses import MEDIA_TYPES, OPENAI_FORMATS, RAW_FORMATS, openai_body, raw_body
from .service import Service

log = logging.getLogger("kdasr.serve")
ROUTES = {"/v1/audio/transcriptions", "/v1/transcribe", "/v1/models", "/healthz", "/readyz", "/metrics"}


PROMPT_IGNORED = "prompt ignored: this model has no prompt conditioning"


def _respond(body: dict | str, fmt: str) -> Response:
    if isinstance(body, dict):
        return JSONResponse(body)
    return PlainTextResponse(body, media_type=MEDIA_TYPES[fmt])


def _check_format(fmt: str, allowed: tuple[str, ...], param: str) -> None:
    if fmt not in allowed:
        raise ApiError(400, f"{param} must be one of {', '.join(allowed)}, not {fmt!r}", "invalid_value", param)


def _disconnected(request: Request):
    """A coroutine that returns when the client goes away (the body has been read: the next message
    uvicorn delivers is the disconnect), so its queued work can be dropped."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


def _on_warm_up_done(app: FastAPI, fut: asyncio.Future) -> None:
    """A failed warm-up stops the server (exit status 1, one line naming the cause), instead of a process
    that answers /healthz 200 and 'warming up' for ever."""
    e = None if fut.cancelled() else fut.exception()
    if e is None:
        return
    reason = f"warm-up decode failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    log.error("%s; stopping", reason)
    app.state.failure = reason
    server = getattr(app.state, "server", None)
    if server is not None:
        server.should_exit = True


def create_app(transcriber: Transcriber, config: ServeConfig) -> FastAPI:
    svc = Service(transcriber, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        install_accept_error_filter(asyncio.get_running_loop())
        svc.batcher.start()
        warm = asyncio.get_running_loop().run_in_executor(None, svc.warm_up)  # /healthz answers meanwhile
        warm.add_done_callback(lambda f: _on_warm_up_done(app, f))
        yield
        with contextlib.suppress(Exception):  # already reported by _on_warm_up_done
            await warm
        await svc.batcher.stop()  # uvicorn has already let in-flight requests finish
        log.info("stopped: queue drained")

    docs = config.docs_on
    app = FastAPI(title="kdasr", summary="Speech recognition (kdasr, onnxruntime)", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    app.state.service = svc
    app.state.failure = None

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        # Starlette's own 404/405/...: OpenAI's shape too, never {"detail": ...}
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "invalid_request")
        message = f"{request.method} {request.url.path}: {e.detail}"
        err = ApiError(e.status_code, message, code, headers=dict(e.headers or {}))
        return JSONResponse(err.body(), status_code=e.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
        return JSONResponse(ApiError(400, f"{param}: {first.get('msg', 'invalid request')}", "invalid_value",
                                     param).body(), status_code=400)

    @app.post("/v1/audio/transcriptions", summary="OpenAI-compatible transcription (multipart form)")
    @with_decode_params(FORM)
    async def openai_transcriptions(
        request: Request,
        file: Annotated[UploadFile, File(description="Audio file (wav, flac, ogg, mp3: anything soundfile reads)")],
        model: Annotated[str | None, Form(description="The served model id (GET /v1/models) or whisper-1")] = None,
        response_format: Annotated[str, Form()] = "json",
        language: Annotated[str | None, Form(description="Checked: must be the model's language")] = None,
        temperature: Annotated[float | None, Form(description="Accepted and ignored (search is deterministic)")] = None,
        prompt: Annotated[str | None, Form(description="Accepted and ignored, with a note (no conditioning)")] = None,
        stream: Annotated[bool, Form(description="Refused when true (no streaming)")] = False,
        timestamp_granularities: Annotated[list[str] | None, Form(
            alias="timestamp_granularities[]",
            description="'word' adds word times and probabilities (from the CTC head) to verbose_json")] = None,
        decode: dict | None = None,  # the FORM decoding fields given (decode_params.py)
    ) -> Response:
        _check_format(response_format, OPENAI_FORMATS, "response_format")
        if stream:
            raise ApiError(400, "stream=true is not supported; the whole transcript is returned at once",
                           "unsupported_parameter", "stream")
        svc.check_model(model)
        svc.check_language(language)
        if temperature is not None and not (math.isfinite(temperature) and 0.0 <= temperature <= 1.0):
            raise ApiError(400, f"temperature must be within [0, 1], not {temperature}", "invalid_value",
                           "temperature")
        words = _word_timestamps(timestamp_granularities, response_format, svc)
        opts = svc.options(**decode)
        result = await svc.transcribe(await file.read(), file.filename or "upload", opts, _disconnected(request),
                                      words)
        body = openai_body(result, response_format, svc.language, opts.nbest > 1)
        if not prompt:
            return _respond(body, response_format)
        # clients that always send a prompt keep working (as with other OpenAI-compatible servers); it is noted
        if isinstance(body, dict):
            body["warnings"] = [*body.get("warnings", []), PROMPT_IGNORED]
        response = _respond(body, response_format)
        response.headers["X-Kdasr-Warning"] = PROMPT_IGNORED
        return response

    @app.post("/v1/transcribe", summary="Raw audio bytes in the body; options as query parameters")
    @with_decode_params(QUERY)
    async def transcribe_raw(
        request: Request,
        format: Annotated[str, Query(description="json (kdasr's result), text, srt or vtt")] = "json",
        name: Annotated[str, Query(description="Name used in the result and in errors")] = "upload",
        decode: dict | None = None,  # the QUERY decoding fields given (decode_params.py)
    ) -> Response:
        _check_format(format, RAW_FORMATS, "format")
        opts = svc.options(**decode)
        result = await svc.transcribe(await request.body(), name, opts, _disconnected(request))
        return _respond(raw_body(result, format, opts.nbest > 1), format)

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": config.model_name, "object": "model", "created": int(svc.started), "owned_by": "kdasr"}
        return {"object": "list", "data": [entry]}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = svc.ready.is_set()
        return JSONResponse({"status": "ready" if ready else "warming up", "model": config.model_name},
                            status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)

    # add_middleware puts each outside the previous one: the last added sees the request first
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes)
    if config.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=config.api_key, drain_bytes=config.max_upload_bytes)
    app.add_middleware(ReadTimeoutMiddleware, timeout_s=config.body_timeout_s)
    if config.cors_origins:  # outside the key check: a browser's preflight carries no Authorization
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics, routes=ROUTES)  # sees 401s and 413s too
    app.add_middleware(RequestIdMiddleware)  # outermost: ids every reply, logs every 5xx
    return app


def serve(transcriber: Transcriber, config: ServeConfig, host: str, port: int, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM; in-flight requests finish first (up to the request timeout).
    Raises WarmUpFailed (after a clean stop) if the warm-up decode fails."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.monotonic()
    app = create_app(transcriber, config)
    cap, backlog = fit_connection_cap(config.max_connections)
    log.info("app built in %.1f s; listening on %s:%d (at most %d connections)", time.monotonic() - started,
             host, port, cap)
    grace = int(config.request_timeout_s) + 5  # an in-flight request ends within its timeout
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=grace,
        http=guarded_protocol(cap, config.header_timeout_s), backlog=backlog,
    ))
    app.state.server = server
    server.run()
    if app.state.failure:
        raise WarmUpFailed(app.state.failure)


def _word_timestamps(granularities: list[str] | None, response_format: str, svc) -> bool:
    """OpenAI's rule: granularities need verbose_json; 'word' asks for word times (kdasr's come from the
    CTC head's alignment, so a model without one refuses them), 'segment' is always given."""
    asked = set(granularities or [])
    if not asked:
        return False
    if unknown := asked - {"word", "segment"}:
        raise ApiError(400, f"timestamp_granularities: unknown value(s) {sorted(unknown)}; use word, segment",
                       "invalid_value", "timestamp_granularities")
    if response_format != "verbose_json":
        raise ApiError(400, "timestamp_granularities needs response_format=verbose_json", "invalid_value",
                       "timestamp_granularities")
    if "word" in asked and not svc.transcriber.model.spec.encoder.ctc_logprobs:
        raise ApiError(400, "word timestamps come from a CTC head, which this model has none of",
                       "unsupported_parameter", "timestamp_granularities")
    return "word" in asked

