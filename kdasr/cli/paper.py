"""`kdasr tune` and `kdasr paper-table`: choose inference-time settings on dev, and the paper's
results table generated from result records and one bench run. Torch-free; thin over kdasr.eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import PrecisionOpt, command_line, user_errors


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
    precision: PrecisionOpt = None,
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


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"{what} {item!r}: expected SYSTEM=KEY")
        out[key] = value
    return out


def paper_table(
    results: Annotated[
        list[Path], typer.Argument(help="Result records (`kdasr eval --json`, `eval-reference --json`) or folders "
                                   "of them (searched recursively; other JSON skipped).")
    ],
    baseline: Annotated[str, typer.Option(help="System name of the baseline (relative changes and latency).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown to write.")] = Path("eval/reports/paper-table.md"),
    bench: Annotated[Path | None, typer.Option(help="JSON of one `kdasr bench --system ...` run (decoding cost).")] = (
        None
    ),
    plot: Annotated[Path | None, typer.Option(help="Also write the WER-against-latency plot (PNG) here.")] = None,
    sets: Annotated[str, typer.Option(help="Comma-separated evaluation sets (columns), in order.")] = ",".join(
        ("dev", "test", "test_heldout", "test_neural_heldout", "test_noisy")
    ),
    plot_set: Annotated[str, typer.Option(help="The set whose WER the plot shows.")] = "test",
    paper: Annotated[
        list[str] | None, typer.Option(help="SYSTEM=KEY: show the paper's CSJ figure KEY (baseline, bert-utterance, "
                                       "bert-context) beside SYSTEM (repeatable; the baseline gets 'baseline').")
    ] = None,
    reference: Annotated[
        list[str] | None, typer.Option(help="A system shown as a reference row (repeatable; whisper* always is).")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Protocol statement for the table (text, or a file holding it), e.g. 'KD "
                                 "students branched from the baseline's epoch-8 checkpoint'.")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """The results table, generated from result records and one bench run (never typed): WER/CER per
    set, relative WER change against the baseline with a paired bootstrap 95 % interval, decoding
    cost (RTFx, latency p50/p95 at batch 1 and 16, latency / baseline), the paper's CSJ figures for
    orientation, whisper tiny.en as a reference row, the protocol; optionally a PNG plot of WER
    against latency (matplotlib: the `report` extra).

    Example: kdasr paper-table exp/paper/results --baseline baseline --bench eval/reports/paper-bench.json
    --paper bert-utt=bert-utterance --paper bert-ctx=bert-context --protocol protocol.txt
    --out eval/reports/paper-table.md --plot eval/reports/paper-table.png
    """
    from ..io_utils import atomic_write_text
    from ..reports.paper_table import PAPER, TableConfig, build_table, load_bench, load_records
    from ..reports.paper_table import plot as write_plot

    rows = _pairs(paper, "--paper")
    bad = sorted(set(rows.values()) - set(PAPER))
    if bad:
        raise typer.BadParameter(f"--paper: unknown key(s) {', '.join(bad)} (one of {', '.join(PAPER)})")
    if resamples < 1000:
        raise typer.BadParameter("--resamples must be at least 1000")
    with user_errors():
        text = ""
        if protocol:
            text = _text_or_file(protocol)
        command = command_line()
        cfg = TableConfig(baseline, tuple(s for s in sets.split(",") if s), rows, tuple(reference or ()), text,
                          command, resamples, seed, plot_set)
        table = build_table(load_records(results), load_bench(bench), cfg)
        atomic_write_text(out, table.markdown)
        if plot is not None:
            write_plot(table.points, plot, plot_set)
    typer.echo(f"wrote {out}" + (f" and {plot}" if plot else ""))


def register(app: typer.Typer) -> None:
    app.command()(tune)
    app.command("paper-table")(paper_table)


def _text_or_file(value: str) -> str:
    """A file's text when VALUE names a file, else VALUE itself. A long text is no file name: on
    Linux is_file() raises ENAMETOOLONG instead of answering False."""
    try:
        is_file = Path(value).is_file()
    except OSError:
        is_file = False
    return Path(value).read_text(encoding="utf-8").strip() if is_file else value
