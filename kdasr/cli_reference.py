"""`kdasr eval-reference`: score whisper tiny.en on a manifest exactly as `kdasr eval` scores kdasr
(same slices, reference policy and WER code), for side-by-side report columns. Torch-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .errors import KdasrError
from .io_utils import atomic_write_text


def eval_reference(
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest with reference texts.")],
    limit: Annotated[int | None, typer.Option(help="Score only the first N utterances.")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads for whisper (compare RTFx at equal threads).")] = 1,
    beam: Annotated[int, typer.Option(help="Whisper beam size.")] = 5,
    hyps: Annotated[Path | None, typer.Option(help="Write per-utterance hypotheses (JSONL) here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the scores as JSON here.")] = None,
) -> None:
    """Score the reference recogniser whisper tiny.en (faster-whisper, int8) on MANIFEST.

    Needs the `reference` extra: pip install 'kdasr[reference]'. Its hypotheses have numbers
    spelled out and pass the same text normaliser as kdasr's references, so WERs compare.

    Example: kdasr eval-reference --manifest data/v2/test_noisy.jsonl --limit 200 --threads 1 --json w.json
    """
    from .eval.reference import REFERENCE_NAME, evaluate_reference
    from .eval.run import problem_lines, summary_line

    try:
        res = evaluate_reference(manifest, limit=limit, threads=threads, beam=beam, hyps_path=hyps)
    except KdasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    for line in problem_lines(res.report):
        typer.echo(line, err=True)
    typer.echo(summary_line(manifest, res.report) + f", RTFx {res.rtfx:.1f} at {threads} thread(s) [{REFERENCE_NAME}]")
    if json_out:
        r = res.report.rates
        atomic_write_text(json_out, json.dumps({
            "system": REFERENCE_NAME, "manifest": str(manifest), "limit": limit, "wer": r.wer, "cer": r.cer,
            "utterances": r.utterances, "words": r.words, "word_errors": r.word_errors,
            "seconds_audio": res.report.seconds_audio, "decode_seconds": res.decode_seconds, "rtfx": res.rtfx,
            "threads": threads, "failures": res.report.failures}, indent=2) + "\n")
    if res.report.failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("eval-reference")(eval_reference)
