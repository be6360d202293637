"""What the routes call: request options -> DecodeOptions, model/language checks, and
upload -> micro-batched Result. Owns the Transcriber, the batcher, the metrics and readiness."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
from starlette.concurrency import run_in_threadpool

from ..runtime import DecodeOptions, Transcriber
from ..runtime.transcriber import Result
from .audio_input import decode_upload
from .batcher import MicroBatcher
from .config import ServeConfig
from .errors import ApiError, overloaded
from .memory import TRIM_AFTER_SECONDS, shrink_encoder_arena, trim_heap
from .metrics import Metrics
from .responses import LANGUAGE_NAMES

log = logging.getLogger("kdasr.serve")
WARMUP_SECONDS = 1.0
MODEL_ALIASES = ("whisper-1",)  # clients written for OpenAI often hard-code it


class Service:
    def __init__(self, transcriber: Transcriber, config: ServeConfig) -> None:
        self.transcriber, self.config = transcriber, config
        self.sample_rate = transcriber.sample_rate
        self.language = transcriber.model.spec.language
        self.base_options = dataclasses.replace(transcriber.recommended_options(), batch_size=config.max_batch)
        self.ready = threading.Event()
        self.started = time.time()
        if config.release_memory:
            shrink_encoder_arena(transcriber)
        self.batcher = MicroBatcher(
            self._decode, config.max_batch, config.max_wait_ms / 1000, config.max_queue,
            config.retry_after_s, on_batch=self._on_batch,
        )
        self.metrics = Metrics(lambda: self.batcher.depth, lambda: self.batcher.busy)

    def _decode(self, waves: list[np.ndarray], opts: DecodeOptions) -> list:
        """Worker thread: one micro-batch through the Transcriber; a long one's heap pages go back."""
        results = self.transcriber.transcribe(waves, opts)
        if self.config.release_memory and sum(len(w) for w in waves) > TRIM_AFTER_SECONDS * self.sample_rate:
            trim_heap()
        return results

    def _on_batch(self, size: int, seconds: float) -> None:
        self.metrics.observe_batch(size, seconds)

    def warm_up(self) -> None:
        """A real decode of the default options (sessions allocate and optimise on first run); then ready."""
        rng = np.random.default_rng(0)
        wave = (0.01 * rng.standard_normal(int(WARMUP_SECONDS * self.sample_rate))).astype(np.float32)
        self.transcriber.transcribe([wave], self.base_options)
        self.ready.set()
        log.info("warm-up decode done: ready")

    # --- request checks -------------------------------------------------------------------------
    def check_model(self, model: str | None) -> None:
        if model and model not in (self.config.model_name, *MODEL_ALIASES):
            raise ApiError(404, f"model {model!r} is not served here (this server serves {self.config.model_name!r})",
                           "model_not_found", "model")

    def check_language(self, language: str | None) -> None:
        if language and language.strip().lower() not in (self.language, LANGUAGE_NAMES.get(self.language)):
            raise ApiError(400, f"language {language!r} is not supported: this model transcribes {self.language!r}",
                           "unsupported_language", "language")

    def options(self, **given) -> DecodeOptions:
        """The model's recommended decoding with the request's overrides (None = not given)."""
        given = {k: v for k, v in given.items() if v is not None}
        for key in ("beam", "nbest"):
            if given.get(key, 1) > self.config.max_beam:
                raise ApiError(400, f"{key} {given[key]} is above this server's limit ({self.config.max_beam})",
                               "invalid_value", key)
        try:
            opts = dataclasses.replace(self.base_options, **given)
        except ValueError as e:
            raise ApiError(400, str(e), "invalid_value") from None
        if opts.nbest > opts.beam:
            raise ApiError(400, f"nbest {opts.nbest} needs beam >= nbest (beam is {opts.beam})", "invalid_value",
                           "nbest")
        return opts

    # --- the work -------------------------------------------------------------------------------
    async def transcribe(self, data: bytes, name: str, opts: DecodeOptions) -> Result:
        if not self.ready.is_set():
            raise overloaded("model is warming up; retry shortly", self.config.retry_after_s)
        # decoding a compressed upload is CPU work: off the event loop
        wave, notes = await run_in_threadpool(
            decode_upload, data, name, self.sample_rate, self.config.max_audio_seconds
        )
        result = await self.batcher.transcribe(wave, opts, self.config.request_timeout_s)
        self.metrics.audio_seconds.inc(result.duration)
        return dataclasses.replace(result, source=name, warnings=notes + result.warnings)

