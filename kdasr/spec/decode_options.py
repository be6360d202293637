"""Decoding options in one frozen dataclass; override with dataclasses.replace.

Every option is declared here once, as a field with its metadata (`_option`): help text, valid range,
CLI flag name where it differs, and the surfaces that expose it (`ON_*`). The CLI flags
(kdasr/cli/decode_flags.py), the server's form and query fields (kdasr/serve/decode_params.py), the
`Transcriber` keywords and `kdasr tune`'s NAME=VALUE are all built from `option_fields()`: adding a
decoding option is this file plus the search code that uses it.

Part of the shared spec (numpy- and onnxruntime-free) because the model-dir spec (kdasr/spec/modelspec.py)
embeds the recommended decoding, and export, which writes the spec, must not import the runtime
(stage order: ... -> export -> runtime). kdasr.runtime (and so `from kdasr import DecodeOptions`) re-exports it."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from dataclasses import dataclass, field

METHODS = ("attention", "ctc")
RESCORERS = ("none", "lm", "bert")

# Surfaces an option is offered on (field metadata "on"). Python keywords and `kdasr tune` take every field.
EXPORT = "export"  # kdasr export: stored in model.json as the model's recommendation (what a search is)
TRANSCRIBE = "transcribe"  # kdasr transcribe
EVAL = "eval"  # kdasr eval
FORM = "form"  # kdasr serve, POST /v1/audio/transcriptions (OpenAI multipart form)
QUERY = "query"  # kdasr serve, POST /v1/transcribe (query parameters)
SURFACES = (EXPORT, TRANSCRIBE, EVAL, FORM, QUERY)
SEARCH = (EXPORT, TRANSCRIBE, EVAL)  # the search's own settings: every decoding command
SERVED = (FORM, QUERY)  # what an (untrusted) HTTP client may choose; resources stay the operator's


@dataclass(frozen=True)
class Within:
    """A numeric field's valid range, [low, high] with either end open. Upper bounds are sanity limits
    far above any useful value (a beam of 10,000 or a 1-hour segment would only buy unbounded cost)."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def text(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def holds(self, value: float) -> bool:
        above = value > self.low or (value == self.low and not self.low_open)
        below = value < self.high or (value == self.high and not self.high_open)
        return above and below


def _option(default, help: str, within: Within | None = None, on: tuple[str, ...] = (), flag: str | None = None):
    """A DecodeOptions field with its declaration: `help` (CLI help, API docs), `within` (numeric range,
    checked in __post_init__), `on` (SURFACES offering it), `flag` (CLI name when not the field's)."""
    assert set(on) <= set(SURFACES), on
    return field(default=default, metadata={"help": help, "within": within, "on": frozenset(on), "flag": flag})


@dataclass(frozen=True)
class DecodeOptions:
    """How a model decodes. Without options, `Transcriber.transcribe` uses the model's recommendation
    (model.json "decoding" over these defaults); change fields with keywords, `transcribe(x, beam=5)`.
    Each field's meaning is its "help" metadata (`option_fields()`; `kdasr transcribe --help`)."""

    method: str = _option("attention", "Decoder: 'attention' (seq2seq) or 'ctc' (the auxiliary head, greedy).",
                          on=(*SEARCH, *SERVED))
    beam: int = _option(1, "Beam size; 1 = greedy (unless a CTC or LM weight asks for the scored search).",
                        Within(1, 1000), on=(*SEARCH, *SERVED))
    nbest: int = _option(1, "Hypotheses kept per input (beam search; Result.nbest, listed by json/jsonl and "
                         "verbose_json).", Within(1, 1000), on=(EXPORT, TRANSCRIBE, *SERVED))
    max_len_ratio: float = _option(0.6, "Hard cap on output tokens per encoder frame.", Within(0.0, 100.0, True))
    # The CTC head's greedy length bounds the attention output (len * ratio + slack): small
    # attention decoders otherwise loop and stop late.
    ctc_length_ratio: float = _option(1.5, "The attention output is at most the CTC head's greedy length * this "
                                      "+ ctc_length_slack.", Within(0.0, 100.0, True))
    ctc_length_slack: int = _option(4, "Tokens added to the CTC length bound (see ctc_length_ratio).",
                                    Within(0, 10_000))
    # Scorer weights (joint CTC/attention, shallow fusion, length bonus); see `weights()`.
    ctc_weight: float = _option(0.0, "Joint CTC/attention: weight of the CTC prefix score (the attention decoder "
                                "gets 1 - it).", Within(0.0, 1.0, high_open=True), on=(*SEARCH, *SERVED))
    lm_weight: float = _option(0.0, "Shallow fusion weight of the LM (needs lm.onnx: --lm or the model dir).",
                               Within(0.0, 100.0), on=SEARCH)
    length_bonus: float = _option(0.0, "Length bonus per token (beta; eos included).", Within(-100.0, 100.0),
                                  on=(*SEARCH, QUERY))
    length_penalty: float = _option(0.0, "Rank by score / (len+1)^alpha (length normalisation); 0 = raw sum.",
                                    Within(0.0, 100.0), on=(*SEARCH, QUERY))
    ctc_prebeam: float = _option(1.5, "CTC prefix scores only for the best ceil(ctc_prebeam * beam) tokens per "
                                 "hypothesis.", Within(1.0, 1000.0))
    # N-best rescoring: total = search score + rescore_weight * (LM log-prob or BERT PLL)
    rescore: str = _option("none", "N-best rescoring: none, lm or bert (pseudo-log-likelihood).", on=SEARCH)
    rescore_weight: float = _option(0.3, "Weight of the rescoring model's score.", Within(0.0, 100.0), on=SEARCH)
    batch_size: int = _option(16, "Utterances (segments) per batch (int8 graphs decode each alone: their text "
                              "must not depend on the batch).", Within(1, 100_000), on=(TRANSCRIBE, EVAL))
    # Padded audio per encoder call. Encoder activations grow with it: 16 x 20 s pieces peaked at
    # 519 MB RSS, 4 x 20 s at 234 MB, in the same wall time (demo-en, 2 threads; robustness.md).
    max_batch_seconds: float = _option(80.0, "Padded audio per encoder call (s).", Within(0.0, 36_000.0, True))
    # Long audio: inputs longer than this are cut at low-energy points into segments no longer
    # than it (and, where possible, no shorter than min(min_segment_seconds, max / 2)), decoded in
    # batch, joined.
    max_segment_seconds: float = _option(20.0, "Cut longer inputs at pauses into segments of at most this (s).",
                                         Within(1.0, 3600.0, True), on=(TRANSCRIBE, QUERY), flag="max_segment")
    min_segment_seconds: float = _option(5.0, "Where possible, segments of long inputs are at least this long (s).",
                                         Within(0.0, 3600.0, True))
    # Whisper models end their text more reliably with some silence after it (kdasr import-whisper).
    pad_seconds: float = _option(0.0, "Silence appended to every segment before the encoder (s).",
                                 Within(0.0, 3600.0), on=(TRANSCRIBE, EVAL), flag="pad")
    pad_to_seconds: float = _option(0.0, "Pad every segment with silence to at least this long (s; 30 = whisper's "
                                    "window).", Within(0.0, 3600.0), on=(TRANSCRIBE, EVAL), flag="pad_to")

    def __post_init__(self) -> None:
        # Every numeric field is checked here, once: the CLI, the Python API, the server and model.json
        # all build DecodeOptions, so none of them can pass NaN, inf, 2.5 beams or negative sizes on.
        for f in option_fields(type(self)):
            if f.within is not None:
                object.__setattr__(self, f.name, _checked(f.name, getattr(self, f.name), f.kind, f.within))
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


@dataclass(frozen=True)
class OptionField:
    """One DecodeOptions field as the surfaces see it (what CLI flags, form fields and keywords are built from)."""

    name: str  # the field, the Python keyword, the HTTP field and tune's NAME
    kind: type  # str, int or float
    default: object
    help: str
    within: Within | None
    on: frozenset[str]
    flag: str  # the CLI parameter name (--max-segment for max_segment_seconds), else the field's name


@functools.cache
def option_fields(cls: type = DecodeOptions, on: str | None = None) -> tuple[OptionField, ...]:
    """The fields of DecodeOptions (or a subclass), in declaration order; `on`: only those offered there."""
    if on is not None:
        assert on in SURFACES, on
        return tuple(f for f in option_fields(cls) if on in f.on)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{f.name}: declare decoding options with _option(default, help, ...)")
        out.append(OptionField(f.name, hints[f.name], f.default, meta["help"], meta["within"], meta["on"],
                               meta["flag"] or f.name))
    return tuple(out)


# help(DecodeOptions) lists every field from its declaration (nothing to keep in step by hand)
DecodeOptions.__doc__ += "\n\n    Fields:\n" + "\n".join(
    f"    {f.name} ({f.kind.__name__}, default {f.default!r}): {f.help}" for f in option_fields())


def _checked(name: str, value, kind: type, within: Within):
    """`value` as `kind` if it is a finite number `within` its range, else ValueError naming the field.
    Integral floats (2.0 from JSON) become ints; 2.5, True and "3" are refused."""
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
    if not within.holds(value):
        raise ValueError(f"{name} must be within {within.text()}, not {value!r}")
    return value


def given_fields(opts: DecodeOptions, base: DecodeOptions | None = None) -> dict:
    """The fields of `opts` that differ from `base` (default: DecodeOptions()): what a model's
    recommendation sets, as model.json stores it."""
    base = base or DecodeOptions()
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(DecodeOptions)
            if getattr(opts, f.name) != getattr(base, f.name)}
