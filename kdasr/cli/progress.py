"""The progress bar of `kdasr transcribe`: by audio seconds (a 30-minute file moves as its chunks are
decoded, not 0/1 until done), with the count of files beside it; on stderr, only on a terminal."""

from __future__ import annotations

import contextlib
import sys

import typer


def audio_seconds(items) -> float:
    """Seconds of audio in the inputs (InputItems), from the files' headers; unreadable ones count 0
    (their error line comes when they are decoded)."""
    import soundfile as sf

    total = 0.0
    for it in items:
        if it.error is not None:
            continue
        if it.duration is not None:
            total += it.duration
            continue
        with contextlib.suppress(Exception):  # any reason: the decode reports it properly
            total += max(0.0, sf.info(it.audio).duration - it.start)
    return total


class Progress:
    """`progress()` after each file, `progress.audio(s)` as audio is decoded (the Transcriber's hook), or
    `progress.audio(None)` per file where no hook runs (Ray); `echo` prints a line above the bar."""

    def __init__(self, bar=None, task=None) -> None:
        self.bar, self.task, self.files = bar, task, 0

    def __call__(self) -> None:
        self.files += 1
        if self.bar is not None:
            self.bar.update(self.task, files=self.files)

    def audio(self, seconds: float) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, seconds)

    def echo(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            typer.echo(line, err=True)


@contextlib.contextmanager
def progress_bar(items: list, quiet: bool):
    """A rich progress bar on stderr when it is a terminal (and not --quiet); otherwise none."""
    if quiet or not sys.stderr.isatty():
        yield Progress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    columns = ("transcribing", BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s of audio"),
               TextColumn(f"{{task.fields[files]}}/{len(items)} files"), TimeElapsedColumn(), TimeRemainingColumn())
    with Bar(*columns, console=Console(stderr=True), transient=True) as bar:
        yield Progress(bar, bar.add_task("transcribe", total=audio_seconds(items) or None, files=0))


def counted(items: list, label: str):
    """Iterate ITEMS with progress on stderr: a rich bar on a terminal; elsewhere (a log file) one
    line per tenth done, so a long run in the background shows how far it is."""
    if sys.stderr.isatty():
        from rich.progress import track

        yield from track(items, description=label, transient=True)
        return
    import time

    start, step = time.monotonic(), max(1, len(items) // 10)
    for n, item in enumerate(items, 1):
        yield item
        if n % step == 0 or n == len(items):
            typer.echo(f"{label}: {n}/{len(items)} in {time.monotonic() - start:.0f} s", err=True)
