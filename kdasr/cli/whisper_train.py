"""`kdasr train-whisper`: fine-tune an imported whisper as a KD student (kdasr/training/whisper_recipe.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import user_errors


def train_whisper_cmd(
    source: Annotated[str, typer.Argument(help="tiny.en or base (the bundled packages), or a CTranslate2 whisper "
                                          "folder: the model to fine-tune.")],
    train: Annotated[Path, typer.Option(help="Training manifest (kdasr's lowercase transcripts).")],
    dev: Annotated[Path, typer.Option(help="Dev manifest: its CE is logged before, during and after.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: whisper.pt, train_log.csv, summary.json, "
                                      "encoder-cache/.")],
    kd: Annotated[str, typer.Option(help="none, bert, bert-context or lm (needs --soft-labels over whisper ids).")
                  ] = "none",
    soft_labels: Annotated[Path | None, typer.Option(help="Soft labels from `kdasr teacher soft-labels` with a "
                                                     "teacher trained with --tokenizer whisper:NAME.")] = None,
    kd_weight: Annotated[float | None, typer.Option(help="λ \\[default: 0.1 bert/lm, 0.3 bert-context].")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Wall-clock budget in minutes.")] = None,
    batch: Annotated[int, typer.Option(help="Utterances per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate (linear warmup, then constant).")] = 1e-5,
    warmup: Annotated[int, typer.Option(help="Warmup steps.")] = 50,
    pad_30: Annotated[bool, typer.Option("--pad-30/--no-pad-30", help="Train on the encoder output of input padded "
                                         "to 30 s (import-whisper's default) or of the input + --tail.")] = False,
    tail: Annotated[float, typer.Option(help="Without --pad-30: seconds of zero log-mel after each input.")] = 1.0,
    train_embeddings: Annotated[bool, typer.Option(help="Also train the tied token embedding and positions.")
                                ] = False,
    dev_every: Annotated[int, typer.Option(help="Steps between dev-CE rows (0: start and end only).")] = 100,
    cache: Annotated[Path | None, typer.Option(help="Encoder-output cache folder \\[default: OUT/encoder-cache]; "
                                               "runs on the same audio can share one.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    seed: Annotated[int, typer.Option(help="Data order seed.")] = 0,
) -> None:
    """Fine-tune whisper's decoder (encoder frozen, its output cached) with label-smoothed CE or
    KD from a teacher over whisper's tokens, then export with
    `kdasr import-whisper SOURCE --weights OUT/whisper.pt --out DIR` (the same padding flags).

    Example: kdasr train-whisper tiny.en --train data/real/fotaq/train.jsonl --dev dev.jsonl \\
    --out exp/whisper-kd --kd bert --soft-labels exp/soft/whisper-bert --minutes 10 --no-pad-30 --tail 1
    """
    from ..training.whisper_recipe import KD_MODES, WhisperFineTuneConfig, run_whisper_training

    if kd not in KD_MODES:
        raise typer.BadParameter(f"--kd must be one of {', '.join(KD_MODES)}")
    if steps is None and minutes is None:
        raise typer.BadParameter("give --steps or --minutes (or both)")
    cfg = WhisperFineTuneConfig(pad_30=pad_30, tail_seconds=tail, lr=lr, warmup_steps=warmup, batch_utts=batch,
                                steps=steps, minutes=minutes, kd=kd,
                                kd_weight=KD_MODES[kd] if kd_weight is None else kd_weight,
                                train_embeddings=train_embeddings, seed=seed, threads=threads, dev_every=dev_every)
    with user_errors():
        path = run_whisper_training(train, dev, source, out, cfg, soft_labels, cache)
    typer.echo(f"wrote {path}; export: kdasr import-whisper {source} --weights {path} --out DIR"
               + (" --pad-30" if pad_30 else f" --no-pad-30 --tail {tail:g}"))
