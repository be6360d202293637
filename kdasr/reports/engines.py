"""What `kdasr bench` times: the `Engine` protocol, the ORT engine over a Transcriber, and the
timing of one setting (end to end, then the same engine's encoder alone on the same batches).
Torch-free; the torch-eager engine lives on the torch side (kdasr.models.reference_decode)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ..eval.wer import error_rates
from ..runtime import DecodeOptions, Transcriber
from ..runtime.transcriber import Result


class Engine(Protocol):
    """What the bench times: audio arrays in, texts out; and the same engine's encoder alone on the
    batches its last `transcribe` used. `stages`: seconds per stage of the last `transcribe`."""

    name: str
    stages: dict[str, float]

    def transcribe(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[str]: ...

    def encode_only(self, waves: list[np.ndarray], opts: DecodeOptions) -> None: ...


class OrtEngine:
    """A Transcriber as an Engine. During `transcribe` the model's encoder and decoder-step calls
    are timed in CPU seconds (instance attributes over the methods, removed afterwards) and the
    encoder's input batches kept, so `encode_only` replays exactly those batches."""

    def __init__(self, transcriber: Transcriber, name: str) -> None:
        self.t, self.name = transcriber, name
        self.stages: dict[str, float] = {}
        self._batches: list[tuple[int, list[tuple[np.ndarray, np.ndarray]]]] = []

    def transcribe(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[str]:
        model = self.t.model
        encode, step = model.encode, model.decoder_step
        stages = {"encoder graph": 0.0, "decoder graph": 0.0}
        batches: list[tuple[np.ndarray, np.ndarray]] = []

        def timed_encode(w: np.ndarray, lens: np.ndarray) -> dict:
            t0 = time.process_time()
            out = encode(w, lens)
            stages["encoder graph"] += time.process_time() - t0
            batches.append((w, lens))
            return out

        def timed_step(feeds: dict) -> dict:
            t0 = time.process_time()
            out = step(feeds)
            stages["decoder graph"] += time.process_time() - t0
            return out

        model.encode, model.decoder_step = timed_encode, timed_step
        try:
            results = self.t.transcribe(waves, opts)
        finally:
            del model.encode, model.decoder_step
        self.stages, self._batches = stages, [(id(waves), batches)]
        return [r.text if isinstance(r, Result) else "" for r in results]

    def encode_only(self, waves: list[np.ndarray], opts: DecodeOptions) -> None:
        if not self._batches or self._batches[0][0] != id(waves):
            self.transcribe(waves, opts)  # records the batches transcribe uses
        for w, lens in self._batches[0][1]:
            self.t.model.encode(w, lens)


@dataclass
class Row:
    name: str
    seconds: float  # wall time
    audio: float  # seconds of audio
    wer: float | None = None
    cer: float | None = None
    extra: str = ""
    cpu: float = 0.0  # CPU time of this process (less sensitive than wall time to other jobs)
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def rtfx(self) -> float:
        return self.audio / self.seconds if self.seconds > 0 else float("inf")


def _best(fn, repeats: int) -> tuple[float, float, object]:
    """(wall s, CPU s, result) of the run with the least CPU time out of `repeats` runs (on a
    shared machine CPU time is the steadier measure of the work itself)."""
    best = (float("inf"), float("inf"), None)
    for _ in range(max(1, repeats)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if cpu < best[1]:
            best = (wall, cpu, out)
    return best


def measure(
    engine: Engine, name: str, opts: DecodeOptions, waves: list[np.ndarray], refs: list[str], repeats: int = 1,
    sample_rate: int = 16000,
) -> tuple[Row, Row]:
    """(the setting end to end, the same engine's encoder alone on the same batches); `waves` at
    `sample_rate` (the model's)."""
    audio = sum(len(w) for w in waves) / sample_rate
    engine.transcribe(waves[:2], opts)  # warm-up (session allocations, teacher loading)
    wall, cpu, (hyps, stages) = _best(lambda: (engine.transcribe(waves, opts), dict(engine.stages)), repeats)
    r = error_rates(refs, hyps)
    row = Row(name, wall, audio, r.wer, r.cer, cpu=cpu, stages=stages)
    if stages:  # CPU seconds, as the row's CPU s
        stages["search (numpy) + rest"] = max(0.0, cpu - sum(stages.values()))
        row.extra = "CPU s: " + " + ".join(f"{k} {v:.2f}" for k, v in stages.items())
    ewall, ecpu, _ = _best(lambda: engine.encode_only(waves, opts), repeats)
    enc = Row("&nbsp;&nbsp;&nbsp;encoder only", ewall, audio, cpu=ecpu)
    enc.extra = f"{ewall / wall * 100:.0f} % of the row above (wall)"
    return row, enc


def batch_one(opts: DecodeOptions) -> DecodeOptions:
    return replace(opts, batch_size=1)
