"""The `kdasr` command line. Thin: parse, call the library, print. Each command imports its
stage lazily, so the runtime commands never import torch."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .bench import register as register_bench
from .card import register as register_card
from .claim import register as register_claim
from .data import data_app, tokenizer_app
from .experiments import register as register_experiments
from .export import register as register_export
from .extras import missing_extra_line
from .models import models_app
from .paper import register as register_paper
from .protocol import register as register_protocol
from .recipe import register as register_recipe
from .reports import register as register_reports
from .serve import register as register_serve
from .synth import register as register_synth
from .teacher import teacher_app
from .train import register as register_train
from .transcribe import register as register_transcribe
from .whisper import register as register_whisper


class _App(typer.Typer):
    """The command tree; a module missing from a runtime-only install becomes one line naming the extra."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except ModuleNotFoundError as e:
            line = missing_extra_line(e, sys.argv[1:])
            if line is None:
                raise
            print(line, file=sys.stderr)
            sys.exit(2)


app = _App(
    help="kdasr: seq2seq speech recognition distilled from BERT, exported to ONNX, run without torch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"kdasr {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """kdasr: seq2seq speech recognition distilled from BERT, exported to ONNX, run without torch."""
register_synth(data_app)
app.add_typer(data_app, name="data")
app.add_typer(tokenizer_app, name="tokenizer")
register_transcribe(app)
register_export(app)
register_bench(app)
register_reports(app)
register_paper(app)
register_claim(app)
register_serve(app)
app.add_typer(teacher_app, name="teacher")
app.add_typer(models_app, name="models")
register_experiments(app)
register_card(app)
register_whisper(app)
register_recipe(app)
register_protocol(app)
register_train(app)


def main() -> None:  # pragma: no cover
    sys.exit(app())
