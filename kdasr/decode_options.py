"""Decoding options in one frozen dataclass; override with dataclasses.replace.

A top-level module (numpy- and onnxruntime-free) because the model-dir spec (kdasr/modelspec.py)
embeds the recommended decoding, and export, which writes the spec, must not import the runtime
(stage order: ... -> export -> runtime). kdasr.runtime.options re-exports it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

METHODS = ("attention", "ctc")
RESCORERS = ("none", "lm", "bert")


@dataclass(frozen=True)
class DecodeOptions:
    """How a model decodes. Without options, `Transcriber.transcribe` uses the model's recommendation
    (model.json "decoding" over these defaults); change fields with keywords, `transcribe(x, beam=5)`.

    method: "attention" (the seq2seq decoder) or "ctc" (the CTC head, greedy).
    beam: beam size, 1 = greedy. nbest: hypotheses kept in Result.nbest (beam search).
    max_len_ratio: hard cap on output tokens per encoder frame.
    ctc_length_ratio, ctc_length_slack: the attention output is at most the CTC head's greedy
        length * ratio + slack (small decoders otherwise loop).
    ctc_weight: joint CTC/attention, weight of the CTC prefix score in [0, 1).
    lm_weight: shallow fusion with the exported LM (lm.onnx). length_bonus: added per token.
    length_penalty: rank by score / (len + 1) ** length_penalty; 0 = raw sum.
    ctc_prebeam: CTC prefix scores only for the best ceil(ctc_prebeam * beam) tokens.
    rescore: n-best rescoring, "none", "lm" or "bert"; rescore_weight: its weight.
    batch_size: pieces per batch; max_batch_seconds: padded audio per encoder call.
    max_segment_seconds, min_segment_seconds: longer inputs are cut at pauses into pieces of at
        most max (and where possible at least min) seconds.
    pad_seconds: silence appended to every piece before the encoder; pad_to_seconds: pieces padded
        with silence to at least this long (30 = whisper's own window). Whisper models end their
        text more reliably with some silence after it (kdasr import-whisper)."""

    method: str = "attention"  # "attention" (the seq2seq decoder) or "ctc" (the auxiliary head, greedy)
    beam: int = 1  # 1 = greedy (unless a CTC or LM weight asks for the scored search)
    nbest: int = 1  # hypotheses kept per utterance in Result.nbest (beam search only)
    max_len_ratio: float = 0.6  # output tokens per encoder frame, hard cap
    # The CTC head's greedy length bounds the attention output (len * ratio + slack): small
    # attention decoders otherwise loop and stop late.
    ctc_length_ratio: float = 1.5
    ctc_length_slack: int = 4
    # Scorer weights (joint CTC/attention, shallow fusion, length bonus); see `weights()`.
    ctc_weight: float = 0.0  # CTC prefix score weight; the attention decoder gets 1 - ctc_weight
    lm_weight: float = 0.0  # shallow fusion with the LM step graph
    length_bonus: float = 0.0  # beta * |y|, added per emitted token (eos included)
    length_penalty: float = 0.0  # final ranking score / (|y| + 1) ** alpha; 0 = raw sum
    ctc_prebeam: float = 1.5  # CTC prefix scores only for the best ceil(prebeam * beam) tokens per hypothesis
    # N-best rescoring: total = search score + rescore_weight * (LM log-prob or BERT PLL)
    rescore: str = "none"
    rescore_weight: float = 0.3
    batch_size: int = 16
    # Padded audio per encoder call. Encoder activations grow with it: 16 x 20 s pieces peaked at
    # 519 MB RSS, 4 x 20 s at 234 MB, in the same wall time (demo-en, 2 threads; robustness.md).
    max_batch_seconds: float = 80.0
    # Long audio: inputs longer than this are cut at low-energy points into segments no longer
    # than it (and, where possible, no shorter than min(min_segment_seconds, max / 2)), decoded in
    # batch, joined.
    max_segment_seconds: float = 20.0
    min_segment_seconds: float = 5.0
    pad_seconds: float = 0.0
    pad_to_seconds: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # NaN passes every range check below; inf breaks int()
            if f.type == "float" and not math.isfinite(getattr(self, f.name)):
                raise ValueError(f"{f.name} must be a finite number, got {getattr(self, f.name)}")
        if self.method not in METHODS:
            raise ValueError(f"method must be 'attention' or 'ctc', not {self.method!r}")
        if self.beam < 1 or self.nbest < 1:
            raise ValueError("beam and nbest must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0.0 <= self.ctc_weight < 1.0:
            raise ValueError("ctc_weight must be within [0, 1)")
        if self.rescore not in RESCORERS:
            raise ValueError(f"rescore must be one of {', '.join(RESCORERS)}, not {self.rescore!r}")
        if self.pad_seconds < 0 or self.pad_to_seconds < 0:
            raise ValueError("pad_seconds and pad_to_seconds must not be negative")
        if self.max_segment_seconds <= 1.0 or self.min_segment_seconds <= 0:
            raise ValueError("max_segment_seconds must be above 1 and min_segment_seconds above 0")

    def weights(self) -> dict[str, float]:
        """Scorer weights, the espnet convention: decoder and CTC share 1; LM and length bonus add."""
        w = {"decoder": 1.0 - self.ctc_weight, "ctc": self.ctc_weight, "lm": self.lm_weight}
        w["length_bonus"] = self.length_bonus
        return {k: v for k, v in w.items() if v != 0.0}

    @property
    def greedy(self) -> bool:
        """Plain argmax decoding: beam 1 with the decoder alone (today's results, fast path)."""
        return self.beam == 1 and set(self.weights()) <= {"decoder"} and self.length_penalty == 0.0


def given_fields(opts: DecodeOptions, base: DecodeOptions | None = None) -> dict:
    """The fields of `opts` that differ from `base` (default: DecodeOptions()): what a model's
    recommendation sets, as model.json stores it."""
    base = base or DecodeOptions()
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(DecodeOptions)
            if getattr(opts, f.name) != getattr(base, f.name)}
