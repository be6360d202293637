"""`kdasr model-card`: MODEL_CARD.md generated from a model dir, result records, a bench run and the
corpus build info. Torch-free; thin over kdasr.reports.model_card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command_line, user_errors


def model_card(
    model_dir: Annotated[Path, typer.Argument(help="Model directory (model.json, tokenizer.model, graphs).")],
    results: Annotated[
        list[Path] | None,
        typer.Option(help="Result records of `kdasr eval --json`, or folders of them (searched recursively; other "
                     "JSON skipped). Repeatable."),
    ] = None,
    bench: Annotated[Path | None, typer.Option(help="JSON of one `kdasr bench --system ...` run (speed, machine).")] = (
        None
    ),
    corpus: Annotated[
        Path | None, typer.Option(help="The training corpus's build_info.json (sources, licences, voices), e.g. "
                                  "data/v2/build_info.json.")
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="System name of this model in the records and the bench JSON (needed when "
                                 "they hold several systems and none was decoded from MODEL_DIR itself).")
    ] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option(help="Result records of other recognisers on the same sets (e.g. `kdasr eval-reference` of "
                     "whisper), or folders of them: a table beside this model's rows. Repeatable."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Card to write (default MODEL_DIR/MODEL_CARD.md).")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of the WER/CER intervals.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Write a model card generated from facts on disk (never typed by hand): what the model is
    (architecture, parameters, units, format, recommended decoding), data and licences, training
    (teacher, λ, T, K, where the weights came from), WER/CER per set with a bootstrap 95 %
    interval, speed with the machine, limitations taken from the numbers (held-out voice and noise
    gaps) beside generic ones, how to use it and the commands that made it. A missing optional input
    leaves its section saying what is missing; a bad file is one error line naming it.

    Example: kdasr model-card export/demo-en --results exp/paper/results --system bert-ctx \\
    --bench eval/reports/paper-bench.json --corpus data/v2/build_info.json
    """
    from ..reports.model_card import CardInputs, write_card

    if resamples < 1000:
        raise typer.BadParameter("--resamples must be at least 1000")
    target = out or model_dir / "MODEL_CARD.md"
    command = command_line()
    with user_errors():
        write_card(CardInputs(model_dir, tuple(results or ()), bench, corpus, system, tuple(reference or ()),
                              command, resamples, seed),
                   target)
    typer.echo(f"wrote {target}")


def register(app: typer.Typer) -> None:
    app.command("model-card")(model_card)
