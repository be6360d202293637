"""The FastAPI app. Routes parse the request and call `Service`; nothing more.

  POST /v1/audio/transcriptions  OpenAI audio API multipart form (file, model, response_format, language,
                                 temperature, prompt) + kdasr's beam, nbest, ctc_weight, method
  POST /v1/transcribe            raw audio bytes as the body; decoding options as query parameters
  GET  /v1/models, /healthz, /readyz, /metrics"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..runtime import Transcriber
from .config import ServeConfig
from .errors import ApiError
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


def create_app(transcriber: Transcriber, config: ServeConfig) -> FastAPI:
    svc = Service(transcriber, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        svc.batcher.start()
        warm = asyncio.get_running_loop().run_in_executor(None, svc.warm_up)  # /healthz answers meanwhile
        yield
        await warm
        await svc.batcher.stop()  # uvicorn has already let in-flight requests finish
        log.info("stopped: queue drained")

    app = FastAPI(title="kdasr", summary="Speech recognition (kdasr, onnxruntime)", lifespan=lifespan)
    app.state.service = svc

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
        return JSONResponse(ApiError(400, f"{param}: {first.get('msg', 'invalid request')}", "invalid_value",
                                     param).body(), status_code=400)

    @app.post("/v1/audio/transcriptions", summary="OpenAI-compatible transcription (multipart form)")
    async def openai_transcriptions(
        file: Annotated[UploadFile, File(description="Audio file (wav, flac, ogg, mp3: anything soundfile reads)")],
        model: Annotated[str | None, Form(description="The served model id (GET /v1/models) or whisper-1")] = None,
        response_format: Annotated[str, Form()] = "json",
        language: Annotated[str | None, Form(description="Checked: must be the model's language")] = None,
        temperature: Annotated[float | None, Form(description="Accepted and ignored (search is deterministic)")] = None,
        prompt: Annotated[str | None, Form(description="Accepted and ignored, with a note (no conditioning)")] = None,
        beam: Annotated[int | None, Form()] = None,
        nbest: Annotated[int | None, Form(description="verbose_json lists this many hypotheses")] = None,
        ctc_weight: Annotated[float | None, Form()] = None,
        method: Annotated[str | None, Form()] = None,
        stream: Annotated[bool, Form(description="Refused when true (no streaming)")] = False,
    ) -> Response:
        _check_format(response_format, OPENAI_FORMATS, "response_format")
        if stream:
            raise ApiError(400, "stream=true is not supported; the whole transcript is returned at once",
                           "unsupported_parameter", "stream")
        svc.check_model(model)
        svc.check_language(language)
        opts = svc.options(beam=beam, nbest=nbest, ctc_weight=ctc_weight, method=method)
        result = await svc.transcribe(await file.read(), file.filename or "upload", opts)
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
    async def transcribe_raw(
        request: Request,
        format: Annotated[str, Query(description="json (kdasr's result), text, srt or vtt")] = "json",
        name: Annotated[str, Query(description="Name used in the result and in errors")] = "upload",
        beam: int | None = None,
        nbest: int | None = None,
        ctc_weight: float | None = None,
        method: str | None = None,
        length_penalty: float | None = None,
        length_bonus: float | None = None,
        max_segment_seconds: float | None = None,
    ) -> Response:
        _check_format(format, RAW_FORMATS, "format")
        opts = svc.options(beam=beam, nbest=nbest, ctc_weight=ctc_weight, method=method,
                           length_penalty=length_penalty, length_bonus=length_bonus,
                           max_segment_seconds=max_segment_seconds)
        result = await svc.transcribe(await request.body(), name, opts)
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

    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics, routes=ROUTES)  # outermost: sees 413s too
    return app


def serve(transcriber: Transcriber, config: ServeConfig, host: str, port: int, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM; in-flight requests finish first (up to the request timeout)."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.monotonic()
    app = create_app(transcriber, config)
    log.info("app built in %.1f s; listening on %s:%d", time.monotonic() - started, host, port)
    grace = int(config.request_timeout_s) + 5  # an in-flight request ends within its timeout
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=grace)
