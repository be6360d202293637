"""Experiment commands on training runs (torch, training stage): `kdasr curves` decodes every epoch
checkpoint of one or more runs on the same dev subset and writes learning curves (CSV + PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import user_errors


def curves(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (kdasr train --out) holding epoch-N.pt files.")],
    dev: Annotated[Path, typer.Option("--dev", help="Dev manifest (JSONL); its first --limit utterances are used.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write: one row per checkpoint.")],
    plot: Annotated[Path | None, typer.Option(help="Also draw dev WER against step as this PNG.")] = None,
    loss_plot: Annotated[Path | None, typer.Option(
        help="Also draw every run's training and dev loss from its own logs (train_log.csv, dev_log.csv; nothing "
             "decoded) as this PNG, a panel per parent folder, and the points as PNG's .csv.")] = None,
    limit: Annotated[int, typer.Option(help="Decode the first N dev utterances.")] = 300,
    feature_cache: Annotated[
        Path | None, typer.Option(help="The runs' --feature-cache: read the dev features from it instead of "
                                  "computing them (default: computed once into FIRST_RUN/curves/feats).")
    ] = None,
    max_frames: Annotated[int, typer.Option(help="Padded feature frames per decoding batch.")] = 16000,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Learning curves: each run's epoch-N.pt decoded on the first --limit dev utterances with the
    torch reference decoders (greedy attention and greedy CTC), with the dev loss on hard labels
    (comparable across KD and baseline runs). Writes step, epoch, run, both WERs and the loss per
    checkpoint to --out, and with --plot a PNG (one line per run; a branch joins its source run
    where it left it). Each checkpoint's result is cached in RUN/curves/, so re-running decodes
    only new checkpoints; a checkpoint that cannot be read is reported and skipped (exit status 1).
    With --loss-plot, every run's training loss at each logged step and dev loss at each epoch end,
    read from its own logs (a panel per parent folder, a line per run: each seed of a system).

    Example: kdasr curves exp/paper/baseline exp/paper/bert-utt --dev data/v2/dev.jsonl --limit 300 \\
    --feature-cache data/v2/feats --out eval/reports/paper/curves.csv --plot eval/reports/paper/curves.png
    """
    import torch

    from ..training.curves import learning_curves, plot_curves, write_csv

    if threads:
        torch.set_num_threads(threads)
    with user_errors():
        if loss_plot is not None:  # first: from the logs alone, so a checkpoint that fails to decode leaves it
            from ..training.loss_curves import loss_rows, plot_loss_curves, write_loss_csv

            losses = loss_rows(runs)
            write_loss_csv(losses, loss_plot.with_suffix(".csv"))
            plot_loss_curves(losses, loss_plot)
        rows, failures, decoded = learning_curves(runs, dev, limit, feature_cache, max_frames, progress)
        write_csv(rows, out)
        if plot is not None and rows:
            plot_curves(rows, plot)
    for line in failures:
        typer.echo(f"error: {line}", err=True)
    shown = f"; plot {plot}" if plot is not None and rows else ""
    shown += f"; loss curves {loss_plot}" if loss_plot is not None else ""
    typer.echo(f"{out}: {len(rows)} checkpoints ({decoded} decoded now, {len(rows) - decoded} from the cache){shown}")
    if failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("curves")(curves)
