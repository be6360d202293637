"""`kdasr data ...` and `kdasr tokenizer ...`: thin commands over kdasr.data and kdasr.text.

Library imports happen inside each command so `kdasr --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kdasr.errors import KdasrError

from .common import user_errors

data_app = typer.Typer(help="Prepare and check training data (JSONL manifests).", no_args_is_help=True)
tokenizer_app = typer.Typer(help="Train the sentencepiece tokenizer.", no_args_is_help=True)


def _summary(utts: list) -> str:
    hours = sum(u.duration for u in utts) / 3600
    speakers = len({u.speaker for u in utts if u.speaker})
    return f"{len(utts)} utterances, {hours:.2f} h, {speakers} speakers"


@data_app.command("validate")
def validate(
    manifest: Annotated[Path, typer.Argument(help="JSONL manifest to check.")],
    check_audio: Annotated[bool, typer.Option(help="Also check every audio file exists and is long enough.")] = False,
) -> None:
    """Check a manifest line by line and print every problem (exit status 1 if any).

    Example: kdasr data validate corpus/demo/train.jsonl --check-audio
    """
    from kdasr.data.manifest import read_manifest, validate_manifest

    with user_errors():
        problems = validate_manifest(manifest, check_audio=check_audio)
        for p in problems:
            typer.echo(p)
        if problems:
            typer.echo(f"{len(problems)} problem(s) in {manifest}", err=True)
            raise typer.Exit(1)
        typer.echo(f"ok: {manifest}: {_summary(read_manifest(manifest))}")


@data_app.command("import-kaldi")
def import_kaldi(
    data_dir: Annotated[Path, typer.Argument(help="Kaldi data dir with wav.scp, text [, utt2spk, segments].")],
    out: Annotated[Path, typer.Argument(help="Manifest to write (.jsonl).")],
) -> None:
    """Convert a Kaldi data directory into a JSONL manifest (transcripts normalised).

    Example: kdasr data import-kaldi ~/kaldi/egs/mini/s5/data/train corpus/mini/train.jsonl
    """
    from kdasr.data.kaldi import import_kaldi_dir

    _import_manifest(import_kaldi_dir, data_dir, out)


@data_app.command("import-librispeech")
def import_librispeech(
    root: Annotated[Path, typer.Argument(help="One LibriSpeech split folder, e.g. LibriSpeech/dev-clean.")],
    out: Annotated[Path, typer.Argument(help="Manifest to write (.jsonl).")],
) -> None:
    """Convert a LibriSpeech split into a JSONL manifest (speaker, chapter as doc, utterance number as pos).

    Example: kdasr data import-librispeech ~/data/LibriSpeech/dev-clean corpus/librispeech/dev-clean.jsonl
    """
    from kdasr.data.librispeech import import_librispeech as run

    _import_manifest(run, root, out)


def _import_manifest(read, source: Path, out: Path) -> None:
    """An importer's utterances written as a JSONL manifest, with one summary line."""
    from kdasr.data.manifest import write_manifest

    with user_errors():
        utts = read(source)
        write_manifest(out, utts)
        typer.echo(f"wrote {out}: {_summary(utts)}")


@data_app.command("report")
def report(
    corpus: Annotated[Path, typer.Argument(help="A corpus folder built by `kdasr data synth` (version 2).")],
    tokenizer: Annotated[Path | None, typer.Option(help="Also count sentencepiece units with this model.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the Markdown here (default: print it).")] = None,
) -> None:
    """Corpus statistics as Markdown: hours per engine and split, speakers, words (and units),
    the builder's leak checks, licences and synthesis wall time.

    Example: kdasr data report data/v2 --tokenizer data/v2/tokenizer.model --out eval/reports/corpus-v2.md
    """
    from kdasr.data.corpus_report import corpus_report
    from kdasr.io_utils import atomic_write_text

    with user_errors():
        text = corpus_report(corpus, tokenizer)
        if out is None:
            typer.echo(text)
        else:
            atomic_write_text(out, text)
            typer.echo(f"wrote {out}")


@tokenizer_app.command("train")
def train(
    text_files: Annotated[list[Path], typer.Argument(help="Text files, one transcript a line, or .jsonl manifests.")],
    out: Annotated[Path, typer.Option("--out", help="Output prefix; writes PREFIX.model and PREFIX.vocab.")],
    vocab_size: Annotated[int, typer.Option(help="Number of pieces, specials included.")] = 256,
    model_type: Annotated[str, typer.Option(help="unigram, bpe, char or word.")] = "unigram",
) -> None:
    """Train a sentencepiece tokenizer on normalised transcripts (lines with digits are skipped).

    Example: kdasr tokenizer train corpus/demo/train.jsonl --out exp/tok/unigram256 --vocab-size 256
    """
    from kdasr.text import Tokenizer, train_tokenizer

    with user_errors():
        path = train_tokenizer(text_files, out, vocab_size=vocab_size, model_type=model_type)
        typer.echo(f"wrote {path} (vocab size {Tokenizer(path).vocab_size})")


GAMES = {"fotaq": "flight-of-the-amazon-queen", "bass": "beneath-a-steel-sky"}


@data_app.command("import-game")
def import_game(
    game: Annotated[str, typer.Argument(help="Which game: fotaq (Flight of the Amazon Queen) or bass (Beneath "
                                              "a Steel Sky; its speakers are unknown, so it gives train data only).")],
    package_root: Annotated[Path, typer.Argument(help="Where the game's Debian package is unpacked "
                                                      "(`make setup-data` puts it in data/packages/PACKAGE; "
                                                      "an installed package is under /).")],
    out: Annotated[Path, typer.Argument(help="Corpus folder to write: audio/, train.jsonl, dev_real.jsonl, "
                                             "test_real.jsonl, dev_real_seen.jsonl, build_info.json.")],
    recogniser: Annotated[bool, typer.Option(help="Pair the clips the archive leaves open with the reference "
                                                  "recogniser (needs the `reference` extra); without it they "
                                                  "are dropped and counted.")] = True,
    threads: Annotated[int, typer.Option(min=1, help="Threads of the reference recogniser.")] = 1,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N clips by name: a quick check of "
                                                          "the pipeline, not a corpus.")] = None,
) -> None:
    """Turn a freeware talkie game's voice acting into a transcribed real-speech corpus, split by
    speaker (whole characters held out into dev_real and test_real). Resumable: decoded clips and
    recogniser transcripts are kept and reused.

    Example: kdasr data import-game fotaq data/packages/flight-of-the-amazon-queen data/real/fotaq
             kdasr data import-game bass data/packages/beneath-a-steel-sky data/real/bass
    """
    from rich.progress import track

    with user_errors():
        if game not in GAMES:
            raise KdasrError(f"unknown game {game!r}: choose one of {', '.join(GAMES)}")
        if game == "bass":
            from kdasr.data.games.import_bass import import_bass as import_one
        else:
            from kdasr.data.games.import_fotaq import import_fotaq as import_one
        progress = (lambda items, label: track(items, description=label, transient=True)) \
            if sys.stderr.isatty() else None
        info = import_one(package_root, out, recogniser=recogniser, threads=threads, progress=progress,
                          limit=limit)
        for what, n in info["counts"].items():
            typer.echo(f"{n:6d}  {what}")
        for split, s in info["splits"].items():
            typer.echo(f"{split:14s} {s['clips']:5d} clips  {s['hours']:.2f} h  {len(s['speakers'])} voices")
        typer.echo(f"wrote {out} in {info['wall_seconds']:.0f} s")


@data_app.command("mix")
def mix(
    out: Annotated[Path, typer.Argument(help="Corpus folder to write (train.jsonl + the dev/test manifests of both "
                                             "sources, build_info.json, augmented audio).")],
    synthetic: Annotated[Path, typer.Option(help="The synthetic corpus (kdasr data synth).")] = Path("data/v2"),
    real: Annotated[list[Path] | None, typer.Option(help="A real corpus (kdasr data import-game); repeat for "
                                                      "several \\[default: data/real/fotaq, data/real/bass]")] = None,
    packages: Annotated[Path, typer.Option(help="Where `make setup-noise` unpacked the recorded-noise packages "
                                                "(sonic-pi-samples, hedgewars-data).")] = Path("data/packages"),
    band_limit_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of synthetic train utterances "
                                                    "band-limited through 11.025 kHz (the game clips' rate).")] = 0.3,
    real_copies: Annotated[int, typer.Option(min=0, help="Augmented copies of each real train clip (recorded "
                                                         "sound effects or babble at a drawn SNR).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of every per-utterance choice.")] = 0,
) -> None:
    """Mix real and synthetic speech into one training corpus (deterministic, resumable).

    Example: kdasr data mix data/mix --synthetic data/v2 --real data/real/fotaq
    """
    from rich.progress import track

    from kdasr.data.mix import build_mix

    with user_errors():
        progress = (lambda items, label: track(items, description=label, transient=True)) \
            if sys.stderr.isatty() else None
        real = real or [p for p in (Path("data/real/fotaq"), Path("data/real/bass")) if p.is_dir()]
        info = build_mix(out, synthetic, real, packages, seed=seed, band_limit_share=band_limit_share,
                         real_copies=real_copies, progress=progress)
        h = info["train_hours"]
        typer.echo(f"train: {h['synthetic']:.2f} h synthetic ({info['band_limit']['utterances']} band-limited), "
                   f"{h['real']:.2f} h real incl. augmented copies; real share {info['real_share_of_train_hours']:.0%}")
        typer.echo(f"wrote {out} in {info['wall_seconds']:.0f} s")


@data_app.command("sample")
def sample(
    out: Annotated[Path, typer.Argument(help="Manifest to write (.jsonl).")],
    manifests: Annotated[list[Path], typer.Argument(help="Manifests to draw from (their utterances pooled).")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many utterances to draw.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the draw (the same seed and inputs give the same sample).")] = 0,
) -> None:
    """Draw a random sample of utterances from one or more manifests, e.g. to check a corpus's pairing
    of audio and text by hand or with `kdasr eval-reference`.

    Example: kdasr data sample spot.jsonl data/real/fotaq/*.jsonl -n 200 --seed 26
    """
    import random

    from kdasr.data.manifest import read_manifest, write_manifest

    with user_errors():
        pool = [u for m in manifests for u in read_manifest(m)]
        picked = random.Random(seed).sample(pool, min(n, len(pool)))
        write_manifest(out, picked)
        typer.echo(f"wrote {out}: {_summary(picked)} (drawn from {len(pool)})")
