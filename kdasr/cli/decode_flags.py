"""The decoding flags, declared once for every command that takes them (transcribe, eval, and
export, which stores them as the model's recommendation).

Every flag defaults to None, "not given": the options a command decodes with are
`dataclasses.replace(model_spec.decoding, **given)`, so a flag never overrides the model dir's
recommendation unless it is on the command line (`Transcriber.recommended_options`)."""

from __future__ import annotations

import functools
import inspect
from typing import Annotated

import typer

from ..spec.decode_options import DecodeOptions

# flag (parameter name) -> (DecodeOptions field, type, help)
DECODE_FLAGS: dict[str, tuple[str, type, str]] = {
    "method": ("method", str, "Decoder: 'attention' (seq2seq) or 'ctc' (the auxiliary head, greedy)."),
    "beam": ("beam", int, "Beam size; 1 = greedy."),
    "nbest": ("nbest", int, "Hypotheses kept per input (shown by json/jsonl)."),
    "ctc_weight": ("ctc_weight", float, "Joint CTC/attention: weight of the CTC prefix score."),
    "lm_weight": ("lm_weight", float, "Shallow fusion weight of the LM (needs lm.onnx: --lm or the model dir)."),
    "length_bonus": ("length_bonus", float, "Length bonus per token (beta)."),
    "length_penalty": ("length_penalty", float, "Rank by score / (len+1)^alpha (length normalisation)."),
    "rescore": ("rescore", str, "N-best rescoring: none, lm or bert (pseudo-log-likelihood)."),
    "rescore_weight": ("rescore_weight", float, "Weight of the rescoring model's score."),
    "max_segment": ("max_segment_seconds", float, "Cut longer inputs at pauses into segments of at most this (s)."),
    "batch_size": ("batch_size", int, "Utterances (segments) per batch."),
    "pad": ("pad_seconds", float, "Silence appended to every segment before the encoder (s)."),
    "pad_to": ("pad_to_seconds", float, "Pad every segment with silence to at least this long (s; 30 = whisper's "
               "window)."),
}
DECODING = ("method", "beam", "nbest", "ctc_weight", "lm_weight", "length_bonus", "length_penalty", "rescore",
            "rescore_weight")  # what a search is; batch_size and max_segment are resources
RUNTIME_DEFAULT = " Default: the model's recommendation (model.json), else {}."
EXPORT_HELP = " Stored in model.json as the recommendation: transcribe/eval/serve decode with it unless told."


def with_decode_flags(*names: str, recommend: bool = False):
    """Adds the flags `names` (keys of DECODE_FLAGS) to a Typer command, all defaulting to None;
    the command receives those given as one keyword argument `decode`, keyed by DecodeOptions
    field. recommend=True: the help says they are stored as the model's recommendation (export)."""

    def wrap(fn):
        sig = inspect.signature(fn, eval_str=True)
        extra = []
        for name in names:
            field, kind, text = DECODE_FLAGS[name]
            text = text + (EXPORT_HELP if recommend else RUNTIME_DEFAULT.format(getattr(DecodeOptions(), field)))
            extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                           annotation=Annotated[kind | None, typer.Option(help=text)]))

        @functools.wraps(fn)
        def command(*args, **kwargs):
            given = {DECODE_FLAGS[n][0]: kwargs.pop(n) for n in names}
            return fn(*args, **kwargs, decode={k: v for k, v in given.items() if v is not None})

        params = [p for p in sig.parameters.values() if p.name != "decode"]
        command.__signature__ = sig.replace(parameters=[*params, *extra])
        command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
        return command

    return wrap
