"""`kdasr tune` and `kdasr paper-table`: choose inference-time settings on dev, and the paper's
results table generated from result records and one bench run. Torch-free; thin over kdasr.eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .data import user_errors


def tune(
    manifest: Annotated[Path, typer.Option("--manifest", help="Dev manifest (JSONL). Test sets are refused.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Options file of the best point (for eval --options).")],
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model directory.")] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(help="NAME=V1,V2,...: a DecodeOptions field and its values (repeatable: the grid is the "
                     "product)."),
    ] = None,
    fixed: Annotated[
        list[str] | None, typer.Option("--set", help="NAME=VALUE for every point, e.g. beam=5 or rescore=lm "
                                       "(repeatable).")
    ] = None,
    lm: Annotated[Path | None, typer.Option(help="Exported LM/BERT dir (kdasr export-lm); default: the model dir.")] = (
        None
    ),
    limit: Annotated[int | None, typer.Option(help="Decode only the first N utterances.")] = None,
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 or int8.")] = "fp32",
    work: Annotated[
        Path | None, typer.Option(help="Cache of per-point results (default: OUT's name + '.points' beside it).")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="Also write the Markdown table of all points here.")] = None,
    system: Annotated[str | None, typer.Option(help="System name in the cached records.")] = None,
    allow_test_manifest: Annotated[
        bool, typer.Option(help="Tune on a manifest whose name says test/eval anyway (never on a real test set).")
    ] = False,
) -> None:
    """Decode DEV for every grid point of decoding options, print the table, write the best
    point's options (lowest WER, then CER) as JSON for `kdasr eval --options` / `kdasr bench
    --system`. Each point's result is cached (atomically) under --work: a rerun only decodes
    points not yet done. Refuses a manifest named like a test set.

    Example (shallow fusion): kdasr tune --model export/baseline --manifest data/v2/dev.jsonl --lm export/lm
    --set beam=5 --grid lm_weight=0,0.1,0.2,0.3 --grid length_bonus=0,0.5,1 --out exp/tune/fusion.json

    Example (rescoring): kdasr tune ... --set beam=5 --set nbest=5 --set rescore=bert
    --grid rescore_weight=0.1,0.3,0.5,1 --out exp/tune/rescore-bert.json

    Example (plain): kdasr tune ... --grid beam=1,5,10 --grid ctc_weight=0,0.3,0.5 --out exp/tune/baseline.json
    """
    from ..eval.tune import (
        TuneConfig,
        best_point,
        options_document,
        parse_assignments,
        refuse_test_manifest,
        run_tune,
        tune_table,
        write_options,
    )
    from ..io_utils import atomic_write_text
    from ..runtime.transcriber import default_model_dir

    with user_errors():
        refuse_test_manifest(manifest, allow_test_manifest)
        points_grid = parse_assignments(grid or [], several=True)
        settings = {k: v[0] for k, v in parse_assignments(fixed or [], several=False).items()}
        both = sorted(set(points_grid) & set(settings))
        if both:
            raise typer.BadParameter(f"{', '.join(both)} given by both --grid and --set")
        work_dir = work or out.parent / f"{out.stem}.points"
        cfg = TuneConfig(Path(model or default_model_dir()), manifest, work_dir, points_grid, settings, lm, limit,
                         threads, precision, system or "")
        points = run_tune(cfg, progress=lambda m: typer.echo(m, err=True))
        best = best_point(points)
        text = tune_table(points, best)
        write_options(out, options_document(cfg, points, best))
        if table is not None:
            atomic_write_text(table, f"Tuned on `{manifest}` ({best.record['utterances']} utterances).\n\n{text}\n")
    typer.echo(text)
    typer.echo(f"best: WER {best.record['wer']:.2f} % CER {best.record['cer']:.2f} % with {best.given}; wrote {out}")


def options_file_under_flags(ctx: typer.Context, path: Path, flags: dict, lm: Path | None) -> tuple[dict, Path | None]:
    """The decode flags of the running command over an options file (kdasr tune --out): only flags
    given on the command line win (a flag left at its default does not undo the file); the file's
    LM dir unless --lm is given. Raises KdasrError (one line) for a bad file."""
    from ..eval.tune import read_options

    doc = read_options(path)

    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    chosen = {k: v for k, v in flags.items() if v is not None and given(k)}
    return {**doc.decoding, **chosen}, lm if lm is not None else doc.lm


def bench_systems(ctx: typer.Context, systems: list[str], manifest: Path, out: Path, checkpoint: Path | None,
                  limit: int, threads: int | None, repeats: int, note: str, command: str) -> None:
    """`kdasr bench --system ...`: the systems side by side; Markdown at --out, JSON beside it."""
    from ..eval.bench_systems import SystemsBenchConfig, parse_system, run_systems_bench, write_systems_bench

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
    app.command()(tune)
