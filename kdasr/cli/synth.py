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
    version: Annotated[int, typer.Option(help="Corpus version: 2 (default; neural voices, modern text, "
                                         "real-world conditions) or 1 (the original WEB+Austen, Debian voices).")] = 2,
) -> None:
    """Build the synthetic demo corpus: public-domain text spoken by many TTS voices.

    Text (v2): World English Bible, Jane Austen, US State of the Union addresses and Moby-Dick,
    split by whole documents into teacher text (teacher.jsonl, teacher.txt: one sentence a line,
    a blank line between documents; + Treasury of David) and train/dev/test speech. No dev/test
    sentence is in the teacher or train text (checked; counts in OUT_DIR/build_info.json).

    Speech (v2): espeak-ng, flite and festival voices plus the neural voices hibari and Kokoro
    (style blends = pseudo-speakers), random rate, pitch and formant warp; 16 kHz FLAC under
    OUT_DIR/audio. Train audio gets noise, simulated rooms, telephone band, codecs and gain.

    Test sets: test (seen kinds of voices), test_heldout (held-out Debian voices),
    test_neural_heldout (a held-out Kokoro style), test_noisy (test in noise and rooms).
    A killed run resumes where it stopped. --version 1 rebuilds the original corpus.

    Needs: make setup-data (Debian: espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k
    festvox-us-slt-hts sox sword-text-web sword-comm-tdavid libsword-utils r-cran-janeaustenr;
    npm; PyPI: pip install 'kdasr\\[data]')

    Example: kdasr data synth data/demo --jobs 2 --max-train-sentences 200 --max-eval-sentences 50
    """
    from rich.console import Console
    from rich.table import Table

    from kdasr.data.synth import synth_corpus

    try:
        summary = synth_corpus(
            out_dir, seed=seed, jobs=jobs, voices_per_sentence=voices_per_sentence,
            max_train_sentences=max_train_sentences, max_eval_sentences=max_eval_sentences, version=version,
        )
    except KdasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    table = Table(title=f"{out_dir} (seed {seed}, {summary['seconds']:.0f} s)")
    for col in ("split", "documents", "sentences", "utterances", "speakers", "hours", "synthesized", "reused"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name, s in summary["splits"].items():
        table.add_row(name, *(str(s[k]) for k in ("documents", "sentences", "utterances", "speakers", "hours",
                                                   "synthesized", "reused")))
    t = summary["teacher"]
    table.add_row("teacher (text)", str(t["documents"]), str(t["sentences"]), "-", "-", "-", "-", "-")
    Console().print(table)


def register(data_app: typer.Typer) -> None:
    """Add `synth` to the `kdasr data` command group."""
    data_app.command("synth")(synth)
