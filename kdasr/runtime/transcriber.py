"""The public runtime API: `Transcriber(model_dir).transcribe(paths_or_arrays, DecodeOptions())`.

Torch-free (numpy + onnxruntime). Bad files never stop a batch: `transcribe` returns a
`Failure` naming the file and the reason in that file's place, and decodes the rest."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..errors import AudioError, ModelError
from .onnx_model import OnnxStudent
from .options import DecodeOptions
from .search import attention_greedy, ctc_greedy

AudioInput = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class Result:
    source: str
    text: str
    tokens: list[int]
    duration: float  # seconds of audio


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str


def default_model_dir() -> Path:
    """$KDASR_MODEL, else the shipped export/demo-en beside the package (a source checkout)."""
    env = os.environ.get("KDASR_MODEL")
    if env:
        return Path(env)
    shipped = Path(__file__).resolve().parents[2] / "export" / "demo-en"
    if shipped.is_dir():
        return shipped
    raise ModelError("no model given: pass --model DIR or set KDASR_MODEL (export/demo-en is not here)")


class Transcriber:
    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", threads: int | None = None) -> None:
        self.model = OnnxStudent.load(model_dir or default_model_dir(), device=device, threads=threads)
        self.sample_rate = self.model.sample_rate

    def _load(self, item: AudioInput, index: int) -> tuple[str, np.ndarray]:
        if isinstance(item, np.ndarray):
            wave = np.asarray(item, dtype=np.float32)
            name = f"<array {index}>"
            if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
                raise AudioError(name, "expected a non-empty 1-D float array of finite samples at 16 kHz")
            return name, wave
        return str(item), load_audio(item, self.sample_rate)

    def decode_waves(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[int]]:
        """Decode in length-sorted batches (less padding); results return in input order."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        tokens: list[list[int] | None] = [None] * len(waves)
        max_samples = opts.max_batch_seconds * self.sample_rate
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and end - start < opts.batch_size
                and len(waves[order[end]]) * (end - start + 1) <= max_samples
            ):
                end += 1
            idx = order[start:end]
            lens = np.array([len(waves[i]) for i in idx], dtype=np.int64)
            batch = np.zeros((len(idx), lens.max()), dtype=np.float32)
            for row, i in enumerate(idx):
                batch[row, : lens[row]] = waves[i]
            enc = self.model.encode(batch, lens)
            if opts.method == "ctc":
                out = ctc_greedy(enc["ctc_logprobs"], enc["memory_lens"], self.model.info["special_ids"]["blank"])
            else:
                out = attention_greedy(self.model, enc, opts)
            for i, toks in zip(idx, out):
                tokens[i] = toks
            start = end
        return tokens  # type: ignore[return-value]

    def transcribe(
        self,
        inputs: Sequence[AudioInput],
        opts: DecodeOptions = DecodeOptions(),
        on_loaded: Callable[[int], None] | None = None,
    ) -> list[Result | Failure]:
        loaded: list[tuple[int, str, np.ndarray]] = []
        results: list[Result | Failure | None] = [None] * len(inputs)
        for i, item in enumerate(inputs):
            try:
                name, wave = self._load(item, i)
                loaded.append((i, name, wave))
            except AudioError as e:
                results[i] = Failure(e.path, e.reason)
            if on_loaded:
                on_loaded(1)
        tokens = self.decode_waves([w for _, _, w in loaded], opts)
        tok = self.model.tokenizer
        for (i, name, wave), ids in zip(loaded, tokens):
            results[i] = Result(name, tok.decode(ids), ids, len(wave) / self.sample_rate)
        return results  # type: ignore[return-value]
