"""The public runtime API: `Transcriber(model_dir).transcribe(paths_or_arrays, DecodeOptions())`.

Torch-free (numpy + onnxruntime). Bad files never stop a batch: `transcribe` returns a
`Failure` naming the file and the reason in that file's place, and decodes the rest.
Inputs longer than `max_segment_seconds` are cut at pauses; all segments of all inputs are
decoded together in length-sorted batches and joined back, with their times kept."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..errors import AudioError, ModelError
from .beam import Hypothesis
from .decode import decode_encoded
from .onnx_model import OnnxStudent
from .options import DecodeOptions
from .segment import split_points

AudioInput = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the input
    end: float
    text: str
    tokens: list[int]


@dataclass(frozen=True)
class NBest:
    text: str
    tokens: list[int]
    score: float


@dataclass(frozen=True)
class Result:
    source: str
    text: str
    tokens: list[int]
    duration: float  # seconds of audio
    segments: list[Segment] = field(default_factory=list)
    nbest: list[NBest] = field(default_factory=list)  # beam search: best first (one entry per segment-less input)


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
    """device: 'cpu' or 'cuda'; threads: intra-op threads per session; precision: 'fp32', 'int8'
    (from `kdasr export --quantize int8`) or 'fp16' (GPU); lm / bert: exported teacher dirs
    (`kdasr export-lm`) for shallow fusion and n-best rescoring."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        lm: str | Path | None = None,
        bert: str | Path | None = None,
    ) -> None:
        self.model = OnnxStudent.load(model_dir or default_model_dir(), device, threads, precision)
        self.sample_rate = self.model.sample_rate
        here = self.model.model_dir
        # teachers load on first use; a model dir that holds lm.json / bert.json provides them by default
        self._teacher_dirs = {
            "lm": lm if lm is not None else (here if (here / "lm.json").is_file() else None),
            "bert": bert if bert is not None else (here if (here / "bert.json").is_file() else None),
        }
        self._session_args = (device, threads, precision)
        self._teachers: dict[str, object] = {}

    def recommended_options(self, **overrides) -> DecodeOptions:
        """The decoding the model dir recommends (model.json "decoding", set by `kdasr export
        --beam/--ctc-weight`), else DecodeOptions' defaults; `overrides` win over both."""
        known = {f.name for f in dataclasses.fields(DecodeOptions)}
        recommended = {k: v for k, v in self.model.info.get("decoding", {}).items() if k in known}
        return DecodeOptions(**{**recommended, **overrides})

    def teacher(self, kind: str):
        """The exported LM ('lm') or BERT ('bert'), or None when this Transcriber has none."""
        if kind not in self._teachers:
            path = self._teacher_dirs[kind]
            if path is None:
                self._teachers[kind] = None
            else:
                from .lm_model import OnnxBert, OnnxLM

                cls = OnnxLM if kind == "lm" else OnnxBert
                self._teachers[kind] = cls.load(path, self.model.info, *self._session_args)
        return self._teachers[kind]

    def _load(self, item: AudioInput, index: int) -> tuple[str, np.ndarray]:
        if isinstance(item, np.ndarray):
            wave = np.asarray(item, dtype=np.float32)
            name = f"<array {index}>"
            if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
                raise AudioError(name, "expected a non-empty 1-D float array of finite samples at 16 kHz")
            return name, wave
        return str(item), load_audio(item, self.sample_rate)

    def decode_hypotheses(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[Hypothesis]]:
        """Decode in length-sorted batches (less padding); n-best lists return in input order."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        hyps: list[list[Hypothesis] | None] = [None] * len(waves)
        max_samples = opts.max_batch_seconds * self.sample_rate
        lm = self.teacher("lm") if "lm" in opts.weights() else None
        rescorer = self.teacher(opts.rescore) if opts.rescore != "none" else None
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
            for i, nb in zip(idx, decode_encoded(self.model, enc, opts, lm, rescorer)):
                hyps[i] = nb
            start = end
        return hyps  # type: ignore[return-value]

    def decode_waves(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[int]]:
        return [list(nb[0].tokens) if nb else [] for nb in self.decode_hypotheses(waves, opts)]

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
        pieces: list[np.ndarray] = []
        spans: list[list[tuple[int, int]]] = []
        for _, _, wave in loaded:
            sp = split_points(wave, self.sample_rate, opts.max_segment_seconds, opts.min_segment_seconds)
            spans.append(sp)
            pieces += [wave[a:b] for a, b in sp]
        hyps = self.decode_hypotheses(pieces, opts)
        tok, sr, k = self.model.tokenizer, self.sample_rate, 0
        for (i, name, wave), sp in zip(loaded, spans):
            segments, all_tokens, nbest = [], [], []
            for a, b in sp:
                nb = hyps[k]
                ids = list(nb[0].tokens) if nb else []
                segments.append(Segment(round(a / sr, 3), round(b / sr, 3), tok.decode(ids), ids))
                all_tokens += ids
                if len(sp) == 1:
                    nbest = [NBest(tok.decode(h.tokens), list(h.tokens), h.score) for h in nb]
                k += 1
            text = " ".join(s.text for s in segments if s.text)
            results[i] = Result(name, text, all_tokens, len(wave) / sr, segments, nbest)
        return results  # type: ignore[return-value]
