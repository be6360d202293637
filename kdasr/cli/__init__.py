"""The `kdasr` command line. Thin: parse, call the library, print. Each command imports its
stage lazily, so the runtime commands never import torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .bench import register as register_bench
from .card import register as register_card
from .common import user_errors
from .data import data_app, tokenizer_app
from .experiments import register as register_experiments
from .export import register as register_export
from .extras import missing_extra_line
from .models import models_app
from .paper import register as register_paper
from .recipe import register as register_recipe
from .reports import register as register_reports
from .serve import register as register_serve
from .synth import register as register_synth
from .teacher import teacher_app
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
register_serve(app)
app.add_typer(teacher_app, name="teacher")
app.add_typer(models_app, name="models")
register_experiments(app)
register_card(app)
register_whisper(app)
register_recipe(app)


@app.command()
def train(
    train_manifest: Annotated[Path, typer.Option("--train", help="Training manifest (JSONL).")],
    dev_manifest: Annotated[Path, typer.Option("--dev", help="Dev manifest (JSONL).")],
    tokenizer: Annotated[Path, typer.Option(help="sentencepiece model (kdasr tokenizer train).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Experiment folder: checkpoints and logs.")],
    config: Annotated[str, typer.Option(help=(
        "Packaged config or a .toml path. demo: the shipped model's shape (4.4M parameters, Conformer + LSTM "
        "attention decoder), for a few to tens of hours of speech; demo-fast: demo with 80 ms frames, the "
        "fastest learner on a CPU; whisper-tiny-frozen: whisper tiny.en's pretrained encoder (frozen, cached) "
        "under kdasr's decoder, for little or real speech; paper / paper-v2: the paper's experiments; tiny: "
        "a 0.05M-parameter toy for tests, never for a real corpus."))] = "demo",
    minutes: Annotated[float | None, typer.Option(help="Stop after this many minutes (checkpoint kept).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads.")] = None,
    feature_cache: Annotated[
        Path | None, typer.Option(help="Where precomputed features live (default OUT/feats).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/last.pt when present.")] = True,
    snapshot: Annotated[
        list[float] | None, typer.Option(help="Also keep OUT/snapshot-<M>min.pt after M training minutes (repeatable).")
    ] = None,
    kd: Annotated[str, typer.Option(help="Distillation: none, lm, bert (utterance) or bert-context.")] = "none",
    soft_labels: Annotated[
        Path | None, typer.Option(help="Soft-label folder from `kdasr teacher soft-labels` (needed with --kd).")
    ] = None,
    kd_weight: Annotated[
        float | None, typer.Option(help="λ of the soft term (default 0.1; 0.3 for bert-context).")
    ] = None,
    checkpoint_minutes: Annotated[float | None, typer.Option(help="Write OUT/last.pt this often.")] = None,
    amp: Annotated[str | None, typer.Option(help="'bf16' autocasts the forward pass; 'none' (default).")] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(help="Start from these weights (a checkpoint .pt or an exported model dir such as "
                     "export/demo-en) with a fresh optimiser and schedule; same tokenizer required."),
    ] = None,
    init_encoder_from: Annotated[
        Path | None,
        typer.Option(help="Start the encoder and CTC head from these weights (checkpoint or model dir) and the "
                     "decoder of --config's kind from scratch, with a fresh optimiser; the encoder must be "
                     "--config's. For comparing decoders on one encoder."),
    ] = None,
    branch_from: Annotated[
        Path | None,
        typer.Option(help="Continue another run's checkpoint (its epoch-N.pt or last.pt) in OUT: its weights, "
                     "optimiser, schedule and batch position, elapsed time and RNGs, with this command's "
                     "--kd/--soft-labels/--kd-weight (the KD students of one table branch from one baseline "
                     "checkpoint). Same --config, --tokenizer, --train and schedule required. When OUT/last.pt "
                     "exists the run resumes it; --minutes counts the source's training time too."),
    ] = None,
    ctc_weight: Annotated[float | None, typer.Option(help="Weight of the auxiliary CTC loss (config default).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (config default).")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Learning-rate warmup steps (config default).")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Padded 10 ms frames per batch (config default).")] = None,
    specaug_start_step: Annotated[int | None, typer.Option(help="Step at which SpecAugment starts.")] = None,
    strict: Annotated[
        bool, typer.Option(help="Refuse manifests with utterances that `kdasr data validate` reports (digits, "
                           "unnormalised text, more text than the duration can hold) instead of leaving them out.")
    ] = False,
) -> None:
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
    from ..training.recipe import run_training

    with user_errors():
        last = run_training(
            train_manifest,
            dev_manifest,
            tokenizer,
            out,
            preset=config,
            feature_cache=feature_cache,
            resume=resume,
            max_minutes=minutes,
            max_steps=max_steps,
            epochs=epochs,
            threads=threads,
            snapshot_minutes=tuple(snapshot) if snapshot else None,
            kd=kd,
            soft_labels=soft_labels,
            kd_weight=kd_weight,
            checkpoint_minutes=checkpoint_minutes,
            amp=amp,
            init_from=init_from,
            ctc_weight=ctc_weight,
            branch_from=branch_from,
            init_encoder_from=init_encoder_from,
            lr=lr,
            warmup_steps=warmup_steps,
            max_frames=max_frames,
            specaug_start_step=specaug_start_step,
            strict=strict,
        )
    typer.echo(f"checkpoint: {last}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
