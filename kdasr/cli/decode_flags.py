"""The decoding flags of transcribe, eval and export (which stores them as the model's recommendation),
built from the DecodeOptions fields offered on each (kdasr/spec/decode_options.py: help, type, flag name).

Every flag defaults to None, "not given": the options a command decodes with are
`dataclasses.replace(model_spec.decoding, **given)`, so a flag never overrides the model dir's
recommendation unless it is on the command line (`Transcriber.recommended_options`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..spec.decode_options import EXPORT, DecodeOptions, OptionField
from ..spec.option_params import with_option_params

RUNTIME_DEFAULT = " Default: the model's recommendation (model.json), else {}."
EXPORT_HELP = " Stored in model.json as the recommendation: transcribe/eval/serve decode with it unless told."


def with_decode_flags(command: str, options: type = DecodeOptions):
    """Adds to a Typer command the flags of the DecodeOptions fields offered on `command` (a surface:
    transcribe, eval or export), all defaulting to None; the command receives those given as one
    keyword argument `decode`, keyed by DecodeOptions field. For export the help says they are stored
    as the model's recommendation."""

    def flag(f: OptionField):
        text = f.help + (EXPORT_HELP if command == EXPORT else RUNTIME_DEFAULT.format(f.default))
        return Annotated[f.kind | None, typer.Option(help=text)]

    return with_option_params(command, flag, cli=True, options=options)
