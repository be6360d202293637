"""Run a batch of `InputItem`s through a Transcriber: results handed on as they finish (to a folder
of outputs written atomically, or to one stream in input order), counted for the final summary.

Used by `kdasr transcribe`; the front-end only parses flags, draws the progress bar and prints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...spec.decode_options import DecodeOptions
from ..transcriber import Failure, Result, Transcriber
from .batch_io import OutputError, write_output
from .formats import render, render_file
from .inputs import InputItem

STREAMED = ("text", "txt", "jsonl")  # formats printed line by line as results arrive (in input order)


@dataclass
class BatchSummary:
    inputs: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    def line(self) -> str:
        rtfx = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
        parts = [f"{self.inputs} inputs: {self.done} transcribed"]
        if self.skipped:
            parts.append(f"{self.skipped} skipped (output exists)")
        parts.append(f"{self.failed} failed")
        return (
            ", ".join(parts) + f"; {self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s "
            f"(RTFx {rtfx:.1f})"
        )


def run_batch(
    t: Transcriber,
    items: list[InputItem],
    opts: DecodeOptions,
    fmt: str | tuple[str, ...],
    outputs: list[Path] | list[tuple[Path, ...]] | None,
    emit: Callable[[str], None],
    on_result: Callable[[InputItem, Result | Failure], None] = lambda item, r: None,
    skipped: int = 0,
    word_timestamps: bool = False,
) -> BatchSummary:
    """Transcribe `items`. With `outputs` (one path per item, or a tuple of paths per item, one per
    format of the tuple `fmt`) each result is written to its path(s) as soon as it is finished;
    without, rendered text goes to `emit` (text/txt/jsonl as results come, in input order;
    json/srt/vtt/tsv at the end). An OutputError from writing stops the batch (the outputs
    already written stay whole) and propagates to the caller, unless only that output's name is
    the problem: then that input is recorded as failed."""
    with_nbest = opts.nbest > 1
    formats = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    fmt = formats[0]  # the streamed format (several need outputs)
    summary = BatchSummary(inputs=len(items) + skipped, skipped=skipped)
    started = time.perf_counter()
    held: dict[int, Result | Failure] = {}
    next_out = 0

    def record(i: int, r: Result | Failure) -> None:
        if isinstance(r, Failure):
            summary.failed += 1
            summary.failures.append(r)
        else:
            summary.done += 1
            summary.audio_seconds += r.duration
        on_result(items[i], r)

    todo = [i for i, it in enumerate(items) if it.error is None]
    for i, it in enumerate(items):
        if it.error is not None:
            held[i] = Failure(it.audio, it.error)
            record(i, held[i])
    words = {"word_timestamps": True} if word_timestamps else {}  # (json/jsonl show them)
    for k, r in t.transcribe_iter([items[i].transcriber_input() for i in todo], opts, **words):
        i = todo[k]
        if outputs is not None:
            if isinstance(r, Result):
                paths = outputs[i] if isinstance(outputs[i], tuple) else (outputs[i],)
                try:
                    for f, path in zip(formats, paths):
                        write_output(path, render_file(r, f, with_nbest))
                except OutputError as e:
                    if not e.per_file:
                        raise OutputError(
                            f"{e} (stopped; the {summary.done} outputs written before it are complete: "
                            "rerun with --skip-existing to continue)"
                        ) from None
                    r = Failure(r.source, str(e))  # this output's name is the problem: the batch goes on
            record(i, r)
            continue
        record(i, r)
        held[i] = r
        if fmt in STREAMED:
            while next_out in held:
                out = held.pop(next_out)
                if isinstance(out, Result):
                    emit(render([out], fmt, with_nbest))
                next_out += 1
    if outputs is None and fmt not in STREAMED:
        good = [held[i] for i in sorted(held) if isinstance(held[i], Result)]
        if good:
            emit(render(good, fmt, with_nbest))
    summary.wall_seconds = time.perf_counter() - started
    return summary
