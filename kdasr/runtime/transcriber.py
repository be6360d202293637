"""The public runtime API: `Transcriber(model_dir).transcribe(paths_or_arrays)` decodes as the model
recommends; pass DecodeOptions to decide otherwise.

Torch-free (numpy + onnxruntime). Bad inputs never stop a batch: `transcribe` returns a
`Failure` naming the input and the reason in its place (unreadable audio, or an onnxruntime error
that this input alone causes), and decodes the rest. By default (VAD_DEFAULT, the same for
`kdasr transcribe` and `kdasr serve`) only speech regions are decoded (silence gives empty text);
`vad=False` decodes the whole input. Inputs longer than `max_segment_seconds` are cut at pauses;
the pieces of a group of inputs are decoded together in length-sorted batches and joined back,
with their times kept. `transcribe_iter` yields each input's result as soon as it is finished and
holds a bounded amount of audio whatever the inputs' number and length (see prepare.py)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from ..errors import AudioError, ModelError
from ..model_store import resolve_model
from ..spec.decode_options import DecodeOptions
from .align import Word, ctc_align, words_of
from .arguments import as_inputs, decode_options, vad_options
from .onnx_model import OnnxStudent
from .prepare import AudioSlice, Prepared, iter_pieces, prepare
from .search.beam import Hypothesis
from .search.decode import RememberedScores, decode_encoded
from .vad import VAD_DEFAULT, VAD_RATE, SileroVad, VadOptions

AudioInput = str | os.PathLike | np.ndarray | AudioSlice
GROUP_BATCHES = 4  # inputs decoded together (and held in memory): this many batches' worth
MIN_PIECE_FRAMES = 16  # pieces shorter than this many encoder frames are padded with silence

@dataclass(frozen=True)
class NBest:
    """One hypothesis of a beam search: its text, token ids and search score (log-probability scale)."""

    text: str
    tokens: list[int]
    score: float


@dataclass(frozen=True)
class Segment:
    """One decoded piece of an input (a speech region, or a cut of a long one), times in seconds."""

    start: float  # seconds from the start of the input
    end: float
    text: str
    tokens: list[int]
    nbest: list[NBest] = field(default_factory=list)  # beam search: this segment's hypotheses, best first
    words: list[Word] = field(default_factory=list)  # with word_timestamps=True: its words, times and CTC probability


@dataclass(frozen=True)
class Result:
    """A decoded input. source: its path or name (`<array N>` for arrays); text: the transcript;
    tokens: its token ids; duration: seconds of audio; segments: the pieces decoded, with their
    times; nbest: the hypotheses of a one-piece input (beam search); warnings: e.g. heavily
    clipped or nearly silent (decoded anyway)."""

    source: str
    text: str
    tokens: list[int]
    duration: float  # seconds of audio
    segments: list[Segment] = field(default_factory=list)
    nbest: list[NBest] = field(default_factory=list)  # beam search, one-piece inputs: best first (else per segment)
    warnings: tuple[str, ...] = ()  # e.g. heavily clipped, nearly silent: decoded anyway


@dataclass(frozen=True)
class Failure:
    """An input that could not be decoded: source (its path or name) and the reason, one line. Returned in
    the input's place, so one bad file never costs the others their results."""

    source: str
    reason: str


def default_model_dir() -> Path:
    """$KDASR_MODEL (a directory or an installed model's name), else the shipped demo-en."""
    return resolve_model(None)


class Transcriber:
    """A loaded model: `Transcriber("demo-en").transcribe("talk.flac").text`.

    model_dir: a model directory or an installed model's name (`kdasr models`; default
    $KDASR_MODEL, else demo-en); device: 'cpu' or 'cuda'; threads: intra-op threads per session;
    precision: 'fp32', 'int8' (from `kdasr export --quantize int8`) or 'fp16' (GPU), default None:
    the one the model recommends for the device (model.json "precision"), else fp32; the one
    running is `t.model.precision`; lm / bert:
    exported teacher dirs (`kdasr export-lm`) for shallow fusion and n-best rescoring; vad:
    voice-activity detection, True (the default, as `kdasr transcribe` and `kdasr serve`: decode
    only speech regions; off for a model that is not 16 kHz), False (decode the whole input) or
    VadOptions (thresholds, padding)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
        precision: str | None = None,
        lm: str | Path | None = None,
        bert: str | Path | None = None,
        vad: bool | VadOptions | None = VAD_DEFAULT,
    ) -> None:
        chosen_vad = vad_options(vad)  # TypeError before the model loads
        self.model = OnnxStudent.load(resolve_model(model_dir), device, threads, precision)
        self.sample_rate = self.model.sample_rate
        if vad is True and self.sample_rate != VAD_RATE:
            chosen_vad = None  # the default asks for VAD where the model allows it; VadOptions insists
        self.vad_options = chosen_vad
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
        self._session_args = (device, threads, self.model.precision)  # teachers: the same (else fp32)
        self._teachers: dict[str, object] = {}
        self._rescore_memo: dict[str, RememberedScores] | None = None  # see remember_rescores()
        # progress hook: called with seconds of input audio finished as decoding goes (a long input
        # advances chunk by chunk, not only at its end): progress bars by audio time
        self.progress: Callable[[float], None] | None = None

    def _advance(self, seconds: float) -> None:
        if self.progress is not None and seconds > 0:
            self.progress(seconds)

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

    def _decode_safe(
        self, waves: list[np.ndarray], opts: DecodeOptions, words: bool = False
    ) -> list[list[Hypothesis] | str]:
        """Decode in length-sorted batches (less padding); n-best lists return in input order. A batch
        that onnxruntime rejects is retried one piece at a time, and a piece that fails alone gets
        the error message in its place, so one bad input never costs the others their results."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        out: list[list[Hypothesis] | str | None] = [None] * len(waves)
        max_samples = opts.max_batch_seconds * self.sample_rate
        # a quantised decoder step scales its input by the whole batch's range (onnx_model.py): an
        # utterance's text would depend on what it was batched with (the server's micro-batches, a
        # folder's sort order). Each is decoded alone instead: the same text however it arrives
        batch_size = 1 if self.model.rows_interact("decoder") else opts.batch_size
        lm = self.teacher("lm") if "lm" in opts.weights() else None
        rescorer = self._rescorer(opts.rescore) if opts.rescore != "none" else None
        start = 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and end - start < batch_size
                and max(len(waves[order[end]]), self.min_piece) * (end - start + 1) <= max_samples
            ):
                end += 1
            idx = order[start:end]
            try:
                for i, nb in zip(idx, self._decode_batch([waves[i] for i in idx], opts, lm, rescorer, words)):
                    out[i] = nb
            except Exception as e:  # onnxruntime raises its own types (Fail, InvalidArgument, ...)
                for i in idx:
                    try:
                        one = self._decode_batch([waves[i]], opts, lm, rescorer, words)[0] if len(idx) > 1 else None
                        out[i] = str(e) if one is None else one
                    except Exception as e1:
                        out[i] = str(e1)
            start = end
        return out  # type: ignore[return-value]

    def _decode_batch(
        self, waves: list[np.ndarray], opts: DecodeOptions, lm, rescorer, words: bool = False
    ) -> list[list[Hypothesis]]:
        # pieces below the frontend's minimum are padded with silence (ORT rejects a too-short batch)
        sr = self.sample_rate  # silence after each piece where asked (whisper: pad_to_seconds 30 is its window)
        lens = np.array([max(len(w) + int(opts.pad_seconds * sr), int(opts.pad_to_seconds * sr), self.min_piece)
                         for w in waves], dtype=np.int64)
        batch = np.zeros((len(waves), lens.max()), dtype=np.float32)
        for row, w in enumerate(waves):
            batch[row, : len(w)] = w
        enc = self.model.encode(batch, lens)
        hyps = decode_encoded(self.model, enc, opts, lm, rescorer)
        if words:  # the best hypothesis of each piece, aligned to the piece's CTC posteriors
            io, blank = self.model.spec.encoder, self.model.spec.special_ids.blank
            if not io.ctc_logprobs:
                raise ModelError(f"{self.model.model_dir}: word timestamps need a CTC head, which this model lacks")
            for row, nb in enumerate(hyps):
                if nb:
                    spans = ctc_align(enc[io.ctc_logprobs][row], int(enc[io.lens][row]), nb[0].tokens, blank)
                    nb[0] = dataclasses.replace(nb[0], alignment=spans)
        return hyps

    def decode_hypotheses(self, waves: list[np.ndarray], opts: DecodeOptions) -> list[list[Hypothesis]]:
        """N-best lists in input order; raises ModelError if onnxruntime fails on a wave."""
        out = self._decode_safe(waves, opts)
        for nb in out:
            if isinstance(nb, str):
                raise ModelError(f"decoding failed: {nb}")
        return out  # type: ignore[return-value]

    def _result(self, prep: Prepared, hyps: list[list[Hypothesis] | str]) -> Result | Failure:
        errors = [h for h in hyps if isinstance(h, str)]
        if errors:
            return Failure(prep.name, f"decoding failed: {errors[0].splitlines()[0][:300]}")
        tok, sr = self.model.tokenizer, self.sample_rate
        segments, all_tokens = [], []
        for (a, b), nb in zip(prep.pieces, hyps):
            ids = list(nb[0].tokens) if nb else []
            alts = [NBest(tok.decode(h.tokens), list(h.tokens), h.score) for h in nb]
            words = (words_of(nb[0].tokens, nb[0].alignment, tok, self.model.spec.frame_shift_s, a / sr, b / sr)
                     if nb and nb[0].alignment else [])
            segments.append(Segment(round(a / sr, 3), round(b / sr, 3), tok.decode(ids), ids, alts, words))
            all_tokens += ids
        nbest = segments[0].nbest if len(segments) == 1 else []
        text = " ".join(s.text for s in segments if s.text)
        return Result(prep.name, text, all_tokens, prep.samples / sr, segments, nbest, prep.warnings)

    # --- piece-level API (the server schedules pieces of many requests itself; see kdasr/serve/batcher.py)
    def plan(self, wave: np.ndarray, opts: DecodeOptions) -> tuple[Prepared, list[np.ndarray]]:
        """A waveform's plan (cut at pauses, as `transcribe` would) and its pieces (views of `wave`)."""
        prep = prepare(wave, 0, self.sample_rate, opts, self._vad, self.vad_options)
        return prep, list(iter_pieces(prep, self.sample_rate))

    def decode_pieces(
        self, pieces: list[np.ndarray], opts: DecodeOptions, words: bool = False
    ) -> list[list[Hypothesis] | str]:
        """N-best lists of pieces, or an error message in the place of a piece onnxruntime fails on;
        words: each best hypothesis aligned to its piece's CTC posteriors (word timestamps)."""
        return self._decode_safe(pieces, opts, words)

    def assemble(self, prep: Prepared, hyps: list[list[Hypothesis] | str]) -> Result | Failure:
        """The Result of a planned input from its pieces' n-best lists (in piece order)."""
        return self._result(prep, hyps)

    def _finish_group(
        self, group: list[Prepared], opts: DecodeOptions, words: bool
    ) -> Iterator[tuple[int, Result | Failure]]:
        pieces = [p for prep in group for p in iter_pieces(prep, self.sample_rate)]
        hyps, k = self._decode_safe(pieces, opts, words), 0
        for prep in group:
            self._advance(prep.samples / self.sample_rate)
            yield prep.index, self._result(prep, hyps[k : k + len(prep.pieces)])
            k += len(prep.pieces)

    def _finish_long(self, prep: Prepared, opts: DecodeOptions, words: bool) -> Result | Failure:
        """A long input: its pieces are read again and decoded a group at a time."""
        hyps: list[list[Hypothesis] | str] = []
        chunk: list[np.ndarray] = []
        held, most = 0, GROUP_BATCHES * opts.max_batch_seconds * self.sample_rate
        reached = 0  # samples of the input finished (the end of the last piece decoded)
        try:
            for piece in iter_pieces(prep, self.sample_rate):
                chunk.append(piece)
                held += len(piece)
                if len(chunk) == GROUP_BATCHES * opts.batch_size or held >= most:
                    hyps += self._decode_safe(chunk, opts, words)
                    chunk, held = [], 0
                    end = prep.pieces[len(hyps) - 1][1]
                    self._advance((end - reached) / self.sample_rate)
                    reached = end
        except AudioError as e:
            return Failure(e.path, e.reason)
        hyps += self._decode_safe(chunk, opts, words)
        self._advance((prep.samples - reached) / self.sample_rate)
        return self._result(prep, hyps)

    def transcribe_iter(
        self, inputs: Sequence[AudioInput], opts: DecodeOptions | None = None, word_timestamps: bool = False,
        **decode,
    ) -> Iterator[tuple[int, Result | Failure]]:
        """(index into inputs, Result or Failure) for every input, each as soon as it is finished
        (not necessarily in input order: a long input finishes before the group it interrupts).
        opts None: the model's recommended decoding (`recommended_options()`); keywords
        (DecodeOptions fields) go over it. word_timestamps: Segment.words from the CTC head's alignment."""
        words = bool(word_timestamps)
        if isinstance(inputs, (str, os.PathLike, np.ndarray, AudioSlice)):
            inputs = [inputs]  # one input, not a sequence of characters or rows
        opts = decode_options(self.model.spec.decoding, opts, decode)
        limit = self.model.spec.architecture.get("max_input_seconds")  # e.g. whisper encoders: 30 s
        longest = max(opts.max_segment_seconds + opts.pad_seconds, opts.pad_to_seconds)
        if isinstance(limit, int | float) and longest > limit:
            raise ModelError(f"{self.model.model_dir}: its encoder takes at most {limit:g} s at once; "
                             f"max_segment_seconds {opts.max_segment_seconds:g} (+ pad_seconds {opts.pad_seconds:g}, "
                             f"or pad_to_seconds {opts.pad_to_seconds:g}) is over it (long audio is cut into pieces "
                             f"of at most max_segment_seconds)")
        group: list[Prepared] = []
        seconds = 0.0
        for i, item in enumerate(inputs):
            try:
                prep = prepare(item, i, self.sample_rate, opts, self._vad, self.vad_options)
            except AudioError as e:
                yield i, Failure(e.path, e.reason)
                continue
            if prep.wave is None:
                yield i, self._finish_long(prep, opts, words)
                continue
            group.append(prep)
            seconds += prep.samples / self.sample_rate
            if len(group) >= GROUP_BATCHES * opts.batch_size or seconds >= GROUP_BATCHES * opts.max_batch_seconds:
                yield from self._finish_group(group, opts, words)
                group, seconds = [], 0.0
        yield from self._finish_group(group, opts, words)

    @overload
    def transcribe(
        self, inputs: str | os.PathLike | np.ndarray | AudioSlice, opts: DecodeOptions | None = None,
        on_loaded: Callable[[int], None] | None = None, word_timestamps: bool = False, **decode: Any,
    ) -> Result | Failure: ...

    @overload
    def transcribe(
        self, inputs: list[AudioInput] | tuple[AudioInput, ...], opts: DecodeOptions | None = None,
        on_loaded: Callable[[int], None] | None = None, word_timestamps: bool = False, **decode: Any,
    ) -> list[Result | Failure]: ...

    def transcribe(self, inputs, opts=None, on_loaded=None, word_timestamps=False, **decode):
        """Decode one input (a path, an array of samples at the model's rate, an AudioSlice) into one
        Result or Failure, or a list of inputs into a list of them, in input order; `on_loaded(1)`
        after each is finished. Anything else is a TypeError.

        opts None (not given): the decoding the model recommends (model.json "decoding" over
        DecodeOptions' defaults; `recommended_options()`), the same as `kdasr transcribe` and
        `kdasr serve` without decoding flags. Keywords change fields of it (or of `opts`):
        `transcribe("a.wav", beam=5, ctc_weight=0.3)`. Pass DecodeOptions() for the library
        defaults (greedy attention). word_timestamps=True: each Segment's `words` (start, end,
        word, probability) from the CTC head's alignment of the decoded tokens."""
        items, single = as_inputs(inputs)
        opts = decode_options(self.model.spec.decoding, opts, decode)
        results: list[Result | Failure | None] = [None] * len(items)
        for i, r in self.transcribe_iter(items, opts, word_timestamps):
            results[i] = r
            if on_loaded:
                on_loaded(1)
        return results[0] if single else results  # type: ignore[return-value]
