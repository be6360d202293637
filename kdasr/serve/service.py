"""What the routes call: request options -> DecodeOptions, model/language checks, and
upload -> micro-batched Result. Owns the Transcriber, the batcher, the metrics and readiness."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable

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
UPLOAD_DECODERS = 4  # uploads decoded at once (off the event loop)
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
            self._decode, transcriber.assemble, config.max_batch, config.max_wait_ms / 1000, config.max_queue,
            config.retry_after_s, on_batch=self._on_batch, sample_rate=self.sample_rate,
            min_piece=transcriber.min_piece,
        )
        self.metrics = Metrics(lambda: self.batcher.depth, lambda: self.batcher.busy)
        # decoding uploads is CPU work and holds up to max_audio_seconds of samples each: a few at a time
        self._upload_slots = asyncio.Semaphore(UPLOAD_DECODERS)
        self._preparing = 0  # admitted uploads not yet queued: they count against the queue's room

    def _decode(self, pieces: list[np.ndarray], opts: DecodeOptions, words: bool = False) -> list:
        """Worker thread: one micro-batch of pieces through the Transcriber; a long one's heap pages go back."""
        hyps = self.transcriber.decode_pieces(pieces, opts, words)
        if self.config.release_memory and sum(len(p) for p in pieces) > TRIM_AFTER_SECONDS * self.sample_rate:
            trim_heap()
        return hyps

    def _on_batch(self, size: int, seconds: float, samples: int) -> None:
        self.metrics.observe_batch(size, seconds)

    def warm_up(self) -> None:
        """A real decode of the default options (sessions allocate and optimise on first run); then ready."""
        rng = np.random.default_rng(0)
        wave = (0.01 * rng.standard_normal(int(WARMUP_SECONDS * self.sample_rate))).astype(np.float32)
        # the pieces straight to the graphs: VAD (on by default) would find no speech in this noise and
        # skip the decoder, and a model that cannot decode would then pass as ready
        (hyps,) = self.transcriber.decode_pieces([wave], self.base_options)
        if isinstance(hyps, str):
            raise RuntimeError(hyps)
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
        except ValueError as e:  # DecodeOptions names the field first
            field = str(e).split(" ", 1)[0]
            raise ApiError(400, str(e), "invalid_value", field if field in given else None) from None
        if opts.nbest > opts.beam:
            raise ApiError(400, f"nbest {opts.nbest} needs beam >= nbest (beam is {opts.beam})", "invalid_value",
                           "nbest")
        return opts

    # --- the work -------------------------------------------------------------------------------
    async def transcribe(self, data: bytes, name: str, opts: DecodeOptions,
                         gone: Callable[[], Awaitable[None]] | None = None, words: bool = False) -> Result:
        """`gone`: returns when the client disconnects; its work is then dropped (see MicroBatcher)."""
        if not self.ready.is_set():
            raise overloaded("model is warming up; retry shortly", self.config.retry_after_s)
        self.batcher.check_room(self._preparing)  # before decoding anything: a full server refuses at once
        self._preparing += 1
        try:
            async with self._upload_slots:
                # decoding and planning an upload is CPU work: off the event loop
                wave, notes, prep, pieces = await run_in_threadpool(self._prepare, data, name, opts)
        finally:
            self._preparing -= 1
        del wave  # the pieces are views of it; nothing else holds it
        result = await self.batcher.transcribe(prep, pieces, opts, self.config.request_timeout_s, gone, words)
        self.metrics.audio_seconds.inc(result.duration)
        return dataclasses.replace(result, source=name, warnings=notes + result.warnings)

    def _prepare(self, data: bytes, name: str, opts: DecodeOptions):
        wave, notes = decode_upload(data, name, self.sample_rate, self.config.max_audio_seconds)
        prep, pieces = self.transcriber.plan(wave, opts)
        return wave, notes, prep, pieces
