"""`kdasr data synth`: thin command over kdasr.data.synth.synth_corpus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kdasr.errors import KdasrError


def synth(
    out_dir: Annotated[Path, typer.Argument(help="Output folder (git-ignored), e.g. data/demo.")],
    seed: Annotated[int, typer.Option(help="Seed for voices and augmentation; same seed, same corpus.")] = 0,
    jobs: Annotated[int, typer.Option(help="Parallel synthesis processes.")] = os.cpu_count() or 1,
    voices_per_sentence: Annotated[int, typer.Option(help="Different voices speaking each train sentence.")] = 2,
    max_train_sentences: Annotated[
        int | None, typer.Option(help="Cap train sentences (whole documents in order; for quick runs).")
    ] = None,
    max_eval_sentences: Annotated[
        int | None, typer.Option(help="Cap dev and test sentences each (for quick runs).")
    ] = None,
) -> None:
    """Build the synthetic demo corpus: public-domain text spoken by Debian TTS voices.

    Text: World English Bible + Jane Austen, split by whole documents into teacher text
    (teacher.jsonl, teacher.txt) and train/dev/test speech.

    Speech: espeak-ng, flite and festival voices with random rate and pitch, written as
    16 kHz FLAC under OUT_DIR/audio; train audio is augmented (speed, room, noise).

    test_heldout.jsonl repeats the test sentences with voices never used for train/dev.
    A killed run resumes where it stopped.

    Needs: sudo apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k
    festvox-us-slt-hts sword-text-web libsword-utils r-cran-janeaustenr

    Example: kdasr data synth data/demo --jobs 2 --max-train-sentences 200 --max-eval-sentences 50
    """
    from rich.console import Console
    from rich.table import Table

    from kdasr.data.synth import synth_corpus

    try:
        summary = synth_corpus(
            out_dir, seed=seed, jobs=jobs, voices_per_sentence=voices_per_sentence,
            max_train_sentences=max_train_sentences, max_eval_sentences=max_eval_sentences,
        )
    except KdasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    table = Table(title=f"{out_dir} (seed {seed}, {summary['seconds']:.0f} s)")
    for col in ("split", "documents", "sentences", "utterances", "hours", "synthesized", "reused"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name, s in summary["splits"].items():
        table.add_row(name, *(str(s[k]) for k in ("documents", "sentences", "utterances", "hours",
                                                   "synthesized", "reused")))
    t = summary["teacher"]
    table.add_row("teacher (text)", str(t["documents"]), str(t["sentences"]), "-", "-", "-", "-")
    Console().print(table)


def register(data_app: typer.Typer) -> None:
    """Add `synth` to the `kdasr data` command group."""
    data_app.command("synth")(synth)
