"""The `kdasr` command line. Thin: parse, call the library, print. Each command imports its
stage lazily, so the runtime commands never import torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_data import data_app, tokenizer_app, user_errors
from .cli_synth import register as register_synth

app = typer.Typer(
    help="kdasr: seq2seq speech recognition distilled from BERT, exported to ONNX, run without torch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register_synth(data_app)
app.add_typer(data_app, name="data")
app.add_typer(tokenizer_app, name="tokenizer")

ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Model directory (default: $KDASR_MODEL or export/demo-en).")
]
MethodOpt = Annotated[str, typer.Option(help="Decoder: 'attention' (seq2seq) or 'ctc' (auxiliary head).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores).")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu' or 'cuda' (needs the gpu extra).")]


@app.command()
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files (any format soundfile reads; resampled to 16 kHz).")],
    model: ModelOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="'text' (path<TAB>text) or 'jsonl'.")] = "text",
    method: MethodOpt = "attention",
    batch_size: Annotated[int, typer.Option(help="Utterances per batch.")] = 16,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Transcribe audio files with an exported model (torch-free).

    Bad files get one `error:` line each on stderr; the good ones are still transcribed and
    the exit status is 1 if any file failed.

    Example: kdasr transcribe eval/samples/*.flac --format jsonl
    """
    from .runtime import DecodeOptions, Failure, Transcriber

    if format not in ("text", "jsonl"):
        raise typer.BadParameter("--format must be 'text' or 'jsonl'")
    with user_errors():
        opts = DecodeOptions(method=method, batch_size=batch_size)
        results = Transcriber(model, device=device, threads=threads).transcribe([str(f) for f in files], opts)
    failed = 0
    for r in results:
        if isinstance(r, Failure):
            failed += 1
            typer.echo(f"error: {r.source}: {r.reason}", err=True)
        elif format == "jsonl":
            typer.echo(json.dumps({"path": r.source, "text": r.text, "duration": round(r.duration, 3)}))
        else:
            typer.echo(f"{r.source}\t{r.text}")
    if failed:
        typer.echo(f"{failed} of {len(results)} files failed", err=True)
        raise typer.Exit(1)


@app.command("eval")
def evaluate(
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest with reference texts.")],
    model: ModelOpt = None,
    method: MethodOpt = "attention",
    hyps: Annotated[Path | None, typer.Option(help="Write per-utterance hypotheses (JSONL) here.")] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
    threads: ThreadsOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Score a model on a manifest: WER and CER (jiwer), torch-free.

    Example: kdasr eval --manifest data/demo/test_heldout.jsonl --hyps exp/hyps.jsonl
    """
    from .eval.run import evaluate_manifest

    with user_errors():
        report = evaluate_manifest(
            manifest, model, method=method, limit=limit, hyps_path=hyps, threads=threads, device=device
        )
    r = report.rates
    typer.echo(
        f"{manifest}: {r.utterances} utts, {r.words} words, WER {r.wer:.2f}%, CER {r.cer:.2f}%"
        + (f", {report.failures} failed" if report.failures else "")
    )
    if report.failures:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoint(s); several are averaged.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    check: Annotated[
        bool, typer.Option("--check", help="Compare every graph with torch; fail above --tolerance.")
    ] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
) -> None:
    """Export a trained checkpoint to a model directory: encoder.onnx, decoder.onnx,
    tokenizer.model, model.json.

    Example: kdasr export exp/demo/epoch-9.pt exp/demo/epoch-10.pt --out export/demo-en --check
    """
    from .export.pipeline import export_checkpoint

    with user_errors():
        _, checks = export_checkpoint(checkpoints, out_dir, check=check)
    typer.echo(f"wrote {out_dir}")
    bad = [c for c in checks if not c.ok(tolerance)]
    for c in checks:
        typer.echo(
            f"check {c.graph}: max |torch - onnx| = {c.max_error:.2e} over {c.cases} shapes "
            f"({'ok' if c.ok(tolerance) else 'FAIL'}, tolerance {tolerance:g})"
        )
    if bad:
        raise typer.Exit(1)


@app.command()
def train(
    train_manifest: Annotated[Path, typer.Option("--train", help="Training manifest (JSONL).")],
    dev_manifest: Annotated[Path, typer.Option("--dev", help="Dev manifest (JSONL).")],
    tokenizer: Annotated[Path, typer.Option(help="sentencepiece model (kdasr tokenizer train).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Experiment folder: checkpoints and logs.")],
    config: Annotated[str, typer.Option(help="Packaged config name (demo, tiny) or a .toml path.")] = "demo",
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
) -> None:
    """Train a student (label-smoothed CE + auxiliary CTC) on precomputed log-mel features.

    Example: kdasr train --train data/demo/train.jsonl --dev data/demo/dev.jsonl \\
    --tokenizer data/demo/tokenizer.model --out exp/demo --minutes 25
    """
    from .training.recipe import run_training

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
        )
    typer.echo(f"checkpoint: {last}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
