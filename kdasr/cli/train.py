"""`kdasr train`: its options are the fields of kdasr.training.request.TrainRun (names, types,
defaults, flags and help text), derived here, so an option is declared once. Thin: build the
request and read its preset here, at the entry point, then call the library."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from enum import Enum
from typing import Annotated, Any

import typer

from .common import user_errors


def _cli_type(hint: Any, default: Any) -> tuple[Any, Any]:
    """The type and default typer gets for a TrainRun field: an enum as its string value, a tuple
    as a repeatable option (None when not given)."""
    if isinstance(default, Enum):
        return str, default.value
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]] | None, None
    return hint, default


def train_parameters() -> list[inspect.Parameter]:
    """`kdasr train`'s options, one per TrainRun field, in field order."""
    from ..training.request import TrainRun

    hints = typing.get_type_hints(TrainRun)
    params = []
    for f in dataclasses.fields(TrainRun):
        default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        kind, cli_default = _cli_type(hints[f.name], default)
        option = typer.Option(*f.metadata["flags"], help=f.metadata["help"])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=cli_default,
                                        annotation=Annotated[kind, option]))
    return params


def train(**options: Any) -> None:
    """Train a student (label-smoothed CE, or KD from teacher soft labels, + auxiliary CTC) on
    precomputed log-mel features. Resumes from OUT/last.pt; runs data-parallel under torchrun.

    Example: kdasr train --train data/demo/train.jsonl --dev data/demo/dev.jsonl \\
    --tokenizer data/demo/tokenizer.model --out exp/demo --minutes 25

    Example (BERT KD with context, 2 processes):
    torchrun --nproc_per_node 2 -m kdasr train --train data/demo/train.jsonl --dev data/demo/dev.jsonl \\
    --tokenizer data/demo/tokenizer.model --out exp/kd --kd bert-context --soft-labels exp/soft/bert-context

    Example (a KD branch of a baseline run from its epoch-8 checkpoint; re-run to resume):
    kdasr train --train data/v2/train.jsonl --dev data/v2/dev.jsonl --tokenizer data/v2/tok1000.model \
    --config kdasr/configs/paper-v2.toml --feature-cache data/v2/feats --epochs 20 --out exp/paper/bert-utt \
    --branch-from exp/paper/baseline/epoch-8.pt --kd bert --soft-labels exp/soft/bert-utt
    """
    from ..training.presets import read_preset
    from ..training.request import TrainRun

    with user_errors():
        run = TrainRun(**options)  # a bad flag fails here, before torch is imported
        from ..training.recipe import run_training

        last = run_training(run, read_preset(run.config))
    typer.echo(f"checkpoint: {last}")


train.__signature__ = inspect.Signature(train_parameters(), return_annotation=None)  # what typer reads


def register(app: typer.Typer) -> None:
    app.command()(train)
