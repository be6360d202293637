"""`kdasr bench`: the runtime's engine report, or with --system the systems' decoding cost side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import LmOpt, ModelOpt, command_line, user_errors


def bench(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest: the audio benchmarked (and its CER).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown report to write, its records as JSON beside "
                                      "it (X.json). The repository's is eval/reports/runtime.md.")],
    model: ModelOpt = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Adds the torch-eager comparison (imports torch): the model's checkpoint (.pt) or an "
            "exported model dir (weights read back from its ONNX graphs), e.g. the --model dir itself."
        ),
    ] = None,
    lm: LmOpt = None,
    limit: Annotated[int, typer.Option(help="Utterances benchmarked.")] = 64,
    threads: Annotated[int, typer.Option(help="onnxruntime intra-op threads of every engine benchmarked.")] = 2,
    long_file: Annotated[
        Path | None, typer.Option(help="A long recording for the segmentation timing and transcribe's peak RSS.")
    ] = None,
    note: Annotated[str, typer.Option(help="A line added to the report (e.g. 'machine busy with training').")] = "",
    repeats: Annotated[int, typer.Option(help="Each timing is the best of this many runs.")] = 1,
    system: Annotated[
        list[str] | None,
        typer.Option(help="NAME=MODEL_DIR[:OPTIONS.json] or NAME=faster-whisper:MODEL[:beam=N] (repeatable): "
                     "instead of the engine report, the systems' decoding cost side by side (batch 1 and 16, "
                     "p50/p95 latency, WER/CER), Markdown at --out and JSON beside it (kdasr paper-table reads it); "
                     "OPTIONS from kdasr tune. faster-whisper:tiny.en or faster-whisper:base is the reference "
                     "recogniser, run as kdasr eval-reference runs it (int8, beam 5 unless beam=N, cpu_threads = "
                     "--threads; needs pip install 'kdasr\\[reference]'); the prefix always means it (write a model "
                     "dir of that name as ./faster-whisper:...)."),
    ] = None,
) -> None:
    """Benchmark the runtime on one set of audio, side by side in one run: torch eager vs ORT fp32 vs
    int8, batch 1 vs 16, greedy vs beam vs the model's recommended decoding, fusion and rescoring,
    each beside its encoder alone, with a per-stage breakdown and the aimed-for ratios; peak RSS
    of `kdasr transcribe`. Torch is imported only for --checkpoint.

    Example: kdasr bench --model export/demo-en --checkpoint export/demo-en --manifest data/demo/test.jsonl
    --threads 1 --out runtime.md

    Example (systems): kdasr bench --manifest data/v2/test.jsonl --threads 1 --system baseline=export/baseline
    --system fusion=export/baseline:exp/tune/fusion.json --out eval/reports/paper-bench.md

    Example (beside whisper): kdasr bench --manifest data/v2/test.jsonl --threads 1 --system student=export/demo-en
    --system fw-tiny=faster-whisper:tiny.en --out eval/reports/bench-vs-whisper.md
    """
    from ..reports.bench import BenchConfig, run_bench

    command = command_line()
    if system:
        return bench_systems(ctx, system, manifest, out, checkpoint, limit, threads, repeats, note, command)
    cfg = BenchConfig(manifest, model, lm, limit, threads, long_file, note, repeats, command, str(checkpoint or ""))
    with user_errors():
        reference = None
        if checkpoint is not None:
            from ..models.reference_decode import TorchEagerEngine  # the bench's only torch import

            reference = TorchEagerEngine.load(checkpoint, threads)
        record = run_bench(cfg, reference, progress=lambda msg: typer.echo(msg, err=True))
    from ..reports.bench_report import write_runtime_bench

    write_runtime_bench(record, out, out.with_suffix(".json"))
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}")


def bench_systems(ctx: typer.Context, systems: list[str], manifest: Path, out: Path, checkpoint: Path | None,
                  limit: int, threads: int | None, repeats: int, note: str, command: str) -> None:
    """`kdasr bench --system ...`: the systems side by side; Markdown at --out, JSON beside it."""
    from ..reports.bench_systems import SystemsBenchConfig, parse_system, run_systems_bench, write_systems_bench

    if checkpoint is not None:
        raise typer.BadParameter("--checkpoint belongs to the engine report, not to --system")
    source = ctx.get_parameter_source("out")
    if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
        raise typer.BadParameter("with --system give --out (the default runtime.md is the engine report)")
    with user_errors():
        specs = tuple(parse_system(s) for s in systems)
        cfg = SystemsBenchConfig(manifest, specs, limit, threads or 1, repeats, command, note)
        doc = run_systems_bench(cfg, progress=lambda m: typer.echo(m, err=True))
        write_systems_bench(doc, out, out.with_suffix(".json"))
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
