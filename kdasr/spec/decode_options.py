"""Decoding options in one frozen dataclass; override with dataclasses.replace.

Part of the shared spec (numpy- and onnxruntime-free) because the model-dir spec (kdasr/spec/modelspec.py)
embeds the recommended decoding, and export, which writes the spec, must not import the runtime
(stage order: ... -> export -> runtime). kdasr.runtime (and so `from kdasr import DecodeOptions`) re-exports it."""

from __future__ import annotations

import dataclasses
import math
import numbers
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
        # Every numeric field is checked here, once: the CLI, the Python API, the server and model.json
        # all build DecodeOptions, so none of them can pass NaN, inf, 2.5 beams or negative sizes on.
        for name, (kind, low, high, low_open) in _NUMERIC.items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), kind, low, high, low_open))
        if self.method not in METHODS:
            raise ValueError(f"method must be 'attention' or 'ctc', not {self.method!r}")
        if self.rescore not in RESCORERS:
            raise ValueError(f"rescore must be one of {', '.join(RESCORERS)}, not {self.rescore!r}")

    def weights(self) -> dict[str, float]:
        """Scorer weights, the espnet convention: decoder and CTC share 1; LM and length bonus add."""
        w = {"decoder": 1.0 - self.ctc_weight, "ctc": self.ctc_weight, "lm": self.lm_weight}
        w["length_bonus"] = self.length_bonus
        return {k: v for k, v in w.items() if v != 0.0}

    @property
    def greedy(self) -> bool:
        """Plain argmax decoding: beam 1 with the decoder alone (today's results, fast path)."""
        return self.beam == 1 and set(self.weights()) <= {"decoder"} and self.length_penalty == 0.0


# field: (int or float, lowest, highest, lowest excluded). Upper bounds are sanity limits far above any
# useful value (a beam of 10,000 or a 1-hour segment would only buy unbounded cost), not tuning advice.
_NUMERIC: dict[str, tuple[type, float, float, bool]] = {
    "beam": (int, 1, 1000, False),
    "nbest": (int, 1, 1000, False),
    "max_len_ratio": (float, 0.0, 100.0, True),
    "ctc_length_ratio": (float, 0.0, 100.0, True),
    "ctc_length_slack": (int, 0, 10_000, False),
    "ctc_weight": (float, 0.0, 1.0, False),  # 1.0 itself is refused: the decoder would get weight 0
    "lm_weight": (float, 0.0, 100.0, False),
    "length_bonus": (float, -100.0, 100.0, False),
    "length_penalty": (float, 0.0, 100.0, False),
    "ctc_prebeam": (float, 1.0, 1000.0, False),
    "rescore_weight": (float, 0.0, 100.0, False),
    "batch_size": (int, 1, 100_000, False),
    "max_batch_seconds": (float, 0.0, 36_000.0, True),
    "max_segment_seconds": (float, 1.0, 3600.0, True),
    "min_segment_seconds": (float, 0.0, 3600.0, True),
    "pad_seconds": (float, 0.0, 3600.0, False),
    "pad_to_seconds": (float, 0.0, 3600.0, False),
}


def _checked(name: str, value, kind: type, low: float, high: float, low_open: bool):
    """`value` as `kind` if it is a finite number within [low, high] ((low, high] if low_open), else ValueError
    naming the field. Integral floats (2.0 from JSON) become ints; 2.5, True and "3" are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars too (tune grids)
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if kind is int:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
        value = int(value)
    else:
        value = float(value)
    if name == "ctc_weight" and value >= 1.0:
        high = math.nextafter(1.0, 0.0)  # the decoder would get weight 0
    if value < low or (low_open and value == low) or value > high:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]" if name != "ctc_weight" else "[0, 1)"
        raise ValueError(f"{name} must be within {span}, not {value!r}")
    return value


def given_fields(opts: DecodeOptions, base: DecodeOptions | None = None) -> dict:
    """The fields of `opts` that differ from `base` (default: DecodeOptions()): what a model's
    recommendation sets, as model.json stores it."""
    base = base or DecodeOptions()
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(DecodeOptions)
            if getattr(opts, f.name) != getattr(base, f.name)}
