"""`kdasr serve` (HTTP server) and `kdasr doctor` (what this machine's onnxruntime can do). Thin:
parse, call kdasr.serve, print. Torch-free; fastapi/uvicorn come from the `serve` extra."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ..defaults import VAD_DEFAULT
from ..spec.precision import RUN_HELP
from .common import user_errors


def _opt(help: str, envvar: str | None = None):
    return typer.Option(envvar=envvar, help=help)


def serve(
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model directory or installed model name (kdasr models; "
                                  "default: $KDASR_MODEL, else demo-en).")
    ] = None,
    host: Annotated[str, _opt("Address to bind; 0.0.0.0 to accept other machines (containers).", "KDASR_HOST")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, _opt("TCP port.", "KDASR_PORT")] = 8000,
    model_name: Annotated[str | None, _opt("Model id clients send and /v1/models lists (default: the dir's name).")] = (
        None
    ),
    max_batch: Annotated[int, _opt("Requests decoded together (1 = no micro-batching).", "KDASR_MAX_BATCH")] = 8,
    max_wait_ms: Annotated[float, _opt("How long a batch waits to fill (ms).", "KDASR_MAX_WAIT_MS")] = 10.0,
    max_queue: Annotated[int, _opt("Waiting requests beyond this get 503 + Retry-After.", "KDASR_MAX_QUEUE")] = 64,
    max_upload_mb: Annotated[float, _opt("Larger uploads get 413.", "KDASR_MAX_UPLOAD_MB")] = 25.0,
    max_audio_seconds: Annotated[float, _opt("Longer audio gets 413.", "KDASR_MAX_AUDIO_SECONDS")] = 600.0,
    request_timeout: Annotated[float, _opt("Seconds per request (queue + decode), else 504.")] = 60.0,
    max_beam: Annotated[int, _opt("Largest beam / nbest a request may ask for.")] = 16,
    threads: Annotated[int | None, _opt("onnxruntime intra-op threads (default: all cores).", "KDASR_THREADS")] = None,
    device: Annotated[str, _opt("'cpu' or 'cuda' (needs the gpu extra).", "KDASR_DEVICE")] = "cpu",
    precision: Annotated[str | None, _opt(RUN_HELP, "KDASR_PRECISION")] = None,
    release_memory: Annotated[
        bool, typer.Option(help="Return a long file's peak memory to the OS after decoding it (arena shrink + "
                           "malloc_trim); off keeps onnxruntime's default arena.")
    ] = True,
    api_key: Annotated[
        str | None, _opt("Require 'Authorization: Bearer KEY' on every route but /healthz and /readyz (the "
                         "openai client sends its api_key this way). Prefer the env var: argv is visible to "
                         "other users.", "KDASR_API_KEY")
    ] = None,
    allow_unauthenticated: Annotated[
        bool, typer.Option("--allow-unauthenticated", envvar="KDASR_ALLOW_UNAUTHENTICATED",
                           help="Serve a non-loopback address (0.0.0.0, ...) without --api-key; refused otherwise.")
    ] = False,
    docs: Annotated[
        bool | None, typer.Option("--docs/--no-docs", help="/docs and /openapi.json (default: on without a key, "
                                  "off with one; when on with a key they need it too).")
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", envvar="KDASR_CORS_ORIGINS",
                                       help="Browser origin allowed to call the API (repeat; '*' for any). "
                                       "Default: none (no CORS headers).")
    ] = None,
    max_connections: Annotated[
        int, _opt("Open connections; beyond it idle ones are closed, then new ones get 503 (also capped "
                  "under the descriptor limit).", "KDASR_MAX_CONNECTIONS")
    ] = 1000,
    header_timeout: Annotated[float, _opt("Seconds for a request's headers to arrive, else 408.")] = 10.0,
    body_timeout: Annotated[float, _opt("Seconds for a request's body to arrive after its headers, else 408.")] = (
        60.0
    ),
    log_level: Annotated[str, _opt("debug, info, warning, error.")] = "info",
    vad: Annotated[
        bool, typer.Option(envvar="KDASR_VAD", help="Voice-activity detection (Silero): decode only speech. The "
                           "library's default, the same for kdasr transcribe and Transcriber(vad=...).")
    ] = VAD_DEFAULT,
    vad_threshold: Annotated[float, _opt("Speech probability at which the VAD starts a region.")] = 0.5,
) -> None:
    """Serve a model over HTTP: the OpenAI audio API (POST /v1/audio/transcriptions), raw bytes
    (POST /v1/transcribe), /v1/models, /healthz, /readyz, /metrics (Prometheus). Concurrent requests
    are micro-batched. Needs the serve extra: pip install 'kdasr\\[serve]'.

    Example: kdasr serve --model export/demo-en --port 8000 --max-batch 8 --max-wait-ms 10

    Then: curl -F file=@talk.flac -F model=demo-en http://127.0.0.1:8000/v1/audio/transcriptions

    Options that show an env var can be set that way (containers); the model dir comes from $KDASR_MODEL.
    """
    if not (api_key or allow_unauthenticated or _loopback(host)):
        typer.echo(f"error: refusing to serve {host} without an API key: set KDASR_API_KEY (or --api-key), "
                   "or pass --allow-unauthenticated (KDASR_ALLOW_UNAUTHENTICATED=1) if a proxy in front "
                   "authenticates", err=True)
        raise typer.Exit(2)
    try:
        from ..serve.app import serve as run_server
        from ..serve.config import ServeConfig
        from ..serve.errors import WarmUpFailed
    except ImportError as e:
        typer.echo(f"error: kdasr serve needs the serve extra (pip install 'kdasr[serve]'): {e}", err=True)
        raise typer.Exit(2) from None
    from ..runtime import Transcriber, VadOptions

    with user_errors():
        try:
            vad_opts = VadOptions(threshold=vad_threshold) if vad else False
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        t = Transcriber(model, device=device, threads=threads, precision=precision, vad=vad_opts)
        try:
            config = ServeConfig(
                model_name=model_name or t.model.model_dir.resolve().name,
                max_batch=max_batch,
                max_wait_ms=max_wait_ms,
                max_queue=max_queue,
                max_upload_mb=max_upload_mb,
                max_audio_seconds=max_audio_seconds,
                request_timeout_s=request_timeout,
                max_beam=max_beam,
                release_memory=release_memory,
                api_key=api_key,
                docs=docs,
                cors_origins=tuple(o.strip() for item in cors_origin or () for o in item.split(",") if o.strip()),
                max_connections=max_connections,
                header_timeout_s=header_timeout,
                body_timeout_s=body_timeout,
            )
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    try:
        run_server(t, config, host, port, log_level)
    except WarmUpFailed as e:
        typer.echo(f"error: {t.model.model_dir}: {e}", err=True)
        raise typer.Exit(1) from None


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def doctor(
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Also check this model (dir or installed name; default: "
                                  "$KDASR_MODEL, else demo-en).")
    ] = None,
    device: Annotated[str, typer.Option(help="'cuda' also runs a real decode on the GPU (or says why it cannot).")] = (
        "cpu"
    ),
) -> None:
    """Check this machine and a model dir before deploying: the onnxruntime version and the providers
    really available, onnxruntime and onnxruntime-gpu installed together (silent CPU fallback), the CPU
    features that decide whether int8 pays off (AVX-512 VNNI / AVX-VNNI / AVX2), the model dir's files,
    format and graph names; with --device cuda, a decode on the GPU. Exit status 1 if any check FAILs.

    Example: kdasr doctor --model export/demo-en --device cuda
    """
    from ..errors import ModelError
    from ..runtime import doctor as dr
    from ..runtime.transcriber import default_model_dir

    if device not in ("cpu", "cuda"):
        raise typer.BadParameter("--device must be cpu or cuda")
    checks = dr.runtime_checks() + dr.cpu_checks()
    if model is None:
        try:
            model = default_model_dir()
        except ModelError:
            checks.append(dr.Check("info", "model", "none given (--model DIR) and no default: skipped"))
    if model is not None:
        from ..model_store import resolve_model

        with contextlib.suppress(ModelError):  # a name (kdasr models); otherwise the checks say what is wrong
            model = resolve_model(model)
        checks.append(dr.Check("info", "model", str(model)))
        checks += dr.model_checks(model)
    if device == "cuda":
        checks += dr.cuda_checks(model)
    for c in checks:
        typer.echo(f"{c.status:<5} {c.name}: {c.detail}")
    if any(c.status == "FAIL" for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(doctor)
