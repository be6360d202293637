"""`kdasr data ...` and `kdasr tokenizer ...`: thin commands over kdasr.data and kdasr.text.

Library imports happen inside each command so `kdasr --help` stays fast.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from kdasr.errors import KdasrError

data_app = typer.Typer(help="Prepare and check training data (JSONL manifests).", no_args_is_help=True)
tokenizer_app = typer.Typer(help="Train the sentencepiece tokenizer.", no_args_is_help=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a KdasrError into one `error: ...` line on stderr and exit status 1."""
    try:
        yield
    except KdasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def command_line() -> str:
    """This invocation as a shell line (for reports and result records: how to make them again)."""
    return shlex.join(["kdasr", *sys.argv[1:]])


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
    from kdasr.data.manifest import write_manifest

    with user_errors():
        utts = import_kaldi_dir(data_dir)
        write_manifest(out, utts)
        typer.echo(f"wrote {out}: {_summary(utts)}")


@data_app.command("import-librispeech")
def import_librispeech(
    root: Annotated[Path, typer.Argument(help="One LibriSpeech split folder, e.g. LibriSpeech/dev-clean.")],
    out: Annotated[Path, typer.Argument(help="Manifest to write (.jsonl).")],
) -> None:
    """Convert a LibriSpeech split into a JSONL manifest (speaker, chapter as doc, utterance number as pos).

    Example: kdasr data import-librispeech ~/data/LibriSpeech/dev-clean corpus/librispeech/dev-clean.jsonl
    """
    from kdasr.data.librispeech import import_librispeech as run
    from kdasr.data.manifest import write_manifest

    with user_errors():
        utts = run(root)
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
