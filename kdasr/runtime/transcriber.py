"""The public runtime API: `Transcriber(model_dir).transcribe(paths_or_arrays)` decodes as the model
recommends; pass DecodeOptions to decide otherwise.

Torch-free (numpy + onnxruntime). Bad inputs never stop a batch: `transcribe` returns a
`Failure` naming the input and the reason in its place (unreadable audio, or an onnxruntime error
that this input alone causes), and decodes the rest. With `vad=VadOptions()` only speech regions
are decoded (silence gives empty text). Inputs longer than `max_segment_seconds` are cut at pauses;
the pieces of a group of inputs are decoded together in length-sorted batches and joined back,
with their times kept. `transcribe_iter` yields each input's result as soon as it is finished and
holds a bounded amount of audio whatever the inputs' number and length (see prepare.py)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AudioError, ModelError
from .beam import Hypothesis
from .decode import RememberedScores, decode_encoded
from .onnx_model import OnnxStudent
from .options import DecodeOptions
from .prepare import AudioSlice, Prepared, iter_pieces, prepare
from .vad import VAD_RATE, SileroVad, VadOptions

AudioInput = str | os.PathLike | np.ndarray | AudioSlice
GROUP_BATCHES = 4  # inputs decoded together (and held in memory): this many batches' worth
MIN_PIECE_FRAMES = 16  # pieces shorter than this many encoder frames are padded with silence

@dataclass(frozen=True)
class NBest:
    text: str
    tokens: list[int]
    score: float


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the input
    end: float
    text: str
    tokens: list[int]
    nbest: list[NBest] = field(default_factory=list)  # beam search: this segment's hypotheses, best first


@dataclass(frozen=True)
class Result:
    source: str
    text: str
    tokens: list[int]
    duration: float  # seconds of audio
    segments: list[Segment] = field(default_factory=list)
    nbest: list[NBest] = field(default_factory=list)  # beam search, one-piece inputs: best first (else per segment)
    warnings: tuple[str, ...] = ()  # e.g. heavily clipped, nearly silent: decoded anyway


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
    (`kdasr export-lm`) for shallow fusion and n-best rescoring; vad: voice-activity detection
    options (None or enabled=False: decode the whole input)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
        lm: str | Path | None = None,
        bert: str | Path | None = None,
        vad: VadOptions | None = None,
    ) -> None:
        self.model = OnnxStudent.load(model_dir or default_model_dir(), device, threads, precision)
        self.sample_rate = self.model.sample_rate
        self.vad_options = vad if vad is not None and vad.enabled else None
        if self.vad_options is not None and self.sample_rate != VAD_RATE:
            raise ModelError(f"voice-activity detection needs a {VAD_RATE} Hz model, not {self.sample_rate} Hz")
        self._vad = SileroVad() if self.vad_options is not None else None
        shift = self.model.spec.frame_shift_s
        self.min_piece = int(max(0.5, MIN_PIECE_FRAMES * shift) * self.sample_rate)
        here = self.model.model_dir
        # teachers load on first use; a model dir that holds lm.json / bert.json provides them by default
        self._teacher_dirs = {
            "lm": lm if lm is not None else (here if (here / "lm.json").is_file() else None),
            "bert": bert if bert is not None else (here if (here / "bert.json").is_file() else None),
        }
        self._session_args = (device, threads, precision)
        self._teachers: dict[str, object] = {}
        self._rescore_memo: dict[str, RememberedScores] | None = None  # see remember_rescores()

    def recommended_options(self, **overrides) -> DecodeOptions:
        """The decoding the model dir recommends (ModelSpec.decoding: DecodeOptions' defaults with
        model.json "decoding" over them, set by `kdasr export --beam/--ctc-weight/...`), with
        `overrides` (DecodeOptions field names) over that. What transcribe() uses without options."""
        return dataclasses.replace(self.model.spec.decoding, **overrides)

    def teacher(self, kind: str):
        """The exported LM ('lm') or BERT ('bert'), or None when this Transcriber has none."""
        if kind not in self._teachers:
            path = self._teacher_dirs[kind]
            if path is None:
                self._teachers[kind] = None
            else:
                from .lm_model import OnnxBert, OnnxLM

                cls = OnnxLM if kind == "lm" else OnnxBert
                self._teachers[kind] = cls.load(path, self.model.spec, *self._session_args)
        return self._teachers[kind]

    def remember_rescores(self) -> None:
        """From now on every rescoring teacher scores each distinct hypothesis once (RememberedScores):
        for a grid search that decodes one dev set at many rescore weights (`kdasr tune`)."""
        self._rescore_memo = {}

    def _rescorer(self, kind: str):
        scorer = self.teacher(kind)
        if scorer is None or self._rescore_memo is None:
            return scorer
        return self._rescore_memo.setdefault(kind, RememberedScores(scorer))

    def _decode_safe(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[Hypothesis] | str]:
        """Decode in length-sorted batches (less padding); n-best lists return in input order. A batch
        that onnxruntime rejects is retried one piece at a time, and a piece that fails alone gets
        the error message in its place, so one bad input never costs the others their results."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        out: list[list[Hypothesis] | str | None] = [None] * len(waves)
        max_samples = opts.max_batch_seconds * self.sample_rate
        lm = self.teacher("lm") if "lm" in opts.weights() else None
        rescorer = self._rescorer(opts.rescore) if opts.rescore != "none" else None
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and end - start < opts.batch_size
                and max(len(waves[order[end]]), self.min_piece) * (end - start + 1) <= max_samples
            ):
                end += 1
            idx = order[start:end]
            try:
                for i, nb in zip(idx, self._decode_batch([waves[i] for i in idx], opts, lm, rescorer)):
                    out[i] = nb
            except Exception as e:  # onnxruntime raises its own types (Fail, InvalidArgument, ...)
                for i in idx:
                    try:
                        out[i] = self._decode_batch([waves[i]], opts, lm, rescorer)[0] if len(idx) > 1 else str(e)
                    except Exception as e1:
                        out[i] = str(e1)
            start = end
        return out  # type: ignore[return-value]

    def _decode_batch(self, waves: list[np.ndarray], opts: DecodeOptions, lm, rescorer) -> list[list[Hypothesis]]:
        # pieces below the frontend's minimum are padded with silence (ORT rejects a too-short batch)
        lens = np.array([max(len(w), self.min_piece) for w in waves], dtype=np.int64)
        batch = np.zeros((len(waves), lens.max()), dtype=np.float32)
        for row, w in enumerate(waves):
            batch[row, : len(w)] = w
        return decode_encoded(self.model, self.model.encode(batch, lens), opts, lm, rescorer)

    def decode_hypotheses(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[Hypothesis]]:
        """N-best lists in input order; raises ModelError if onnxruntime fails on a wave."""
        out = self._decode_safe(waves, opts)
        for nb in out:
            if isinstance(nb, str):
                raise ModelError(f"decoding failed: {nb}")
        return out  # type: ignore[return-value]

    def decode_waves(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[int]]:
        return [list(nb[0].tokens) if nb else [] for nb in self.decode_hypotheses(waves, opts)]

    def _result(self, prep: Prepared, hyps: list[list[Hypothesis] | str]) -> Result | Failure:
        errors = [h for h in hyps if isinstance(h, str)]
        if errors:
            return Failure(prep.name, f"decoding failed: {errors[0].splitlines()[0][:300]}")
        tok, sr = self.model.tokenizer, self.sample_rate
        segments, all_tokens = [], []
        for (a, b), nb in zip(prep.pieces, hyps):
            ids = list(nb[0].tokens) if nb else []
            alts = [NBest(tok.decode(h.tokens), list(h.tokens), h.score) for h in nb]
            segments.append(Segment(round(a / sr, 3), round(b / sr, 3), tok.decode(ids), ids, alts))
            all_tokens += ids
        nbest = segments[0].nbest if len(segments) == 1 else []
        text = " ".join(s.text for s in segments if s.text)
        return Result(prep.name, text, all_tokens, prep.samples / sr, segments, nbest, prep.warnings)

    # --- piece-level API (the server schedules pieces of many requests itself; see kdasr/serve/batcher.py)
    def plan(self, wave: np.ndarray, opts: DecodeOptions) -> tuple[Prepared, list[np.ndarray]]:
        """A waveform's plan (cut at pauses, as `transcribe` would) and its pieces (views of `wave`)."""
        prep = prepare(wave, 0, self.sample_rate, opts, self._vad, self.vad_options)
        return prep, list(iter_pieces(prep, self.sample_rate))

    def decode_pieces(self, pieces: list[np.ndarray], opts: DecodeOptions) -> list[list[Hypothesis] | str]:
        """N-best lists of pieces, or an error message in the place of a piece onnxruntime fails on."""
        return self._decode_safe(pieces, opts)

    def assemble(self, prep: Prepared, hyps: list[list[Hypothesis] | str]) -> Result | Failure:
        """The Result of a planned input from its pieces' n-best lists (in piece order)."""
        return self._result(prep, hyps)

    def _finish_group(self, group: list[Prepared], opts: DecodeOptions) -> Iterator[tuple[int, Result | Failure]]:
        pieces = [p for prep in group for p in iter_pieces(prep, self.sample_rate)]
        hyps, k = self._decode_safe(pieces, opts), 0
        for prep in group:
            yield prep.index, self._result(prep, hyps[k : k + len(prep.pieces)])
            k += len(prep.pieces)

    def _finish_long(self, prep: Prepared, opts: DecodeOptions) -> Result | Failure:
        """A long input: its pieces are read again and decoded a group at a time."""
        hyps: list[list[Hypothesis] | str] = []
        chunk: list[np.ndarray] = []
        held, most = 0, GROUP_BATCHES * opts.max_batch_seconds * self.sample_rate
        try:
            for piece in iter_pieces(prep, self.sample_rate):
                chunk.append(piece)
                held += len(piece)
                if len(chunk) == GROUP_BATCHES * opts.batch_size or held >= most:
                    hyps += self._decode_safe(chunk, opts)
                    chunk, held = [], 0
        except AudioError as e:
            return Failure(e.path, e.reason)
        return self._result(prep, hyps + self._decode_safe(chunk, opts))

    def transcribe_iter(
        self, inputs: Sequence[AudioInput], opts: DecodeOptions | None = None
    ) -> Iterator[tuple[int, Result | Failure]]:
        """(index into inputs, Result or Failure) for every input, each as soon as it is finished
        (not necessarily in input order: a long input finishes before the group it interrupts).
        opts None: the model's recommended decoding (`recommended_options()`)."""
        opts = self.model.spec.decoding if opts is None else opts
        group: list[Prepared] = []
        seconds = 0.0
        for i, item in enumerate(inputs):
            try:
                prep = prepare(item, i, self.sample_rate, opts, self._vad, self.vad_options)
            except AudioError as e:
                yield i, Failure(e.path, e.reason)
                continue
            if prep.wave is None:
                yield i, self._finish_long(prep, opts)
                continue
            group.append(prep)
            seconds += prep.samples / self.sample_rate
            if len(group) >= GROUP_BATCHES * opts.batch_size or seconds >= GROUP_BATCHES * opts.max_batch_seconds:
                yield from self._finish_group(group, opts)
                group, seconds = [], 0.0
        yield from self._finish_group(group, opts)

    def transcribe(
        self,
        inputs: Sequence[AudioInput],
        opts: DecodeOptions | None = None,
        on_loaded: Callable[[int], None] | None = None,
    ) -> list[Result | Failure]:
        """One Result or Failure per input, in input order; `on_loaded(1)` after each is finished.

        opts None (not given): the decoding the model recommends (model.json "decoding" over
        DecodeOptions' defaults; `recommended_options()`), the same as `kdasr transcribe` without
        decoding flags. Pass DecodeOptions() for the library defaults (greedy attention), or
        `recommended_options(beam=5)` to change one field of the recommendation."""
        results: list[Result | Failure | None] = [None] * len(inputs)
        for i, r in self.transcribe_iter(inputs, opts):
            results[i] = r
            if on_loaded:
                on_loaded(1)
        return results  # type: ignore[return-value]
