"""From an input (path, slice of a file, or array) to the pieces the model decodes, in bounded memory.

One pass reads the input block by block and measures, per block, the voice-activity probabilities,
the 10 ms energy and the level (peak, clipping); from those it plans the pieces (speech regions,
cut at pauses). A short input keeps its samples for decoding; a long one (over KEEP_SECONDS) keeps
only the plan, and `iter_pieces` reads it a second time, cutting the pieces out as the blocks go by,
so no more than one block and one piece are ever held. numpy + soundfile + soxr + onnxruntime."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..audio import AudioStats, iter_audio_blocks, truncation_warning
from ..errors import AudioError
from ..spec.decode_options import DecodeOptions
from .segment import EnergyMeter, plan_pieces
from .vad import SileroVad, VadOptions, speech_regions

KEEP_SECONDS = 600.0  # inputs up to this long stay in memory between planning and decoding (38 MB)
BLOCK_SECONDS = 30.0
CLIPPED_WARN = 0.001  # share of samples at full scale above which an input is called clipped
QUIET_WARN_DBFS = -40.0  # peak level below which an input is called nearly silent


@dataclass(frozen=True)
class AudioSlice:
    """Part of a file (Kaldi segments, manifest `start`/`duration`); `name` is the Result's source."""

    path: str | os.PathLike
    start: float = 0.0
    duration: float | None = None
    name: str | None = None


@dataclass
class Prepared:
    index: int
    name: str
    samples: int  # length at the model's rate
    pieces: list[tuple[int, int]]  # sample spans to decode, sorted
    wave: np.ndarray | None  # the samples, for inputs up to KEEP_SECONDS
    source: AudioSlice | None  # where to read them again otherwise
    warnings: tuple[str, ...]


def input_warnings(stats: AudioStats) -> tuple[str, ...]:
    out = []
    if stats.header_mismatch:
        out.append(truncation_warning(stats.header_mismatch))
    if stats.clipped_fraction >= CLIPPED_WARN:
        out.append(f"heavily clipped: {100 * stats.clipped_fraction:.1f} % of samples at full scale")
    if stats.dbfs(stats.peak) < QUIET_WARN_DBFS:
        out.append(f"nearly silent: peak {stats.dbfs(stats.peak):.0f} dBFS, RMS {stats.dbfs(stats.rms):.0f} dBFS")
    return tuple(out)


def _blocks(item, index: int, rate: int, stats: AudioStats) -> tuple[str, AudioSlice | None, Iterator[np.ndarray]]:
    if isinstance(item, np.ndarray):
        wave = np.asarray(item, dtype=np.float32)
        name = f"<array {index}>"
        if wave.ndim != 1 or wave.size == 0 or not np.isfinite(wave).all():
            raise AudioError(name, "expected a non-empty 1-D float array of finite samples at 16 kHz")
        stats.add(wave[:, None])
        return name, None, iter([wave])
    src = item if isinstance(item, AudioSlice) else AudioSlice(item)
    blocks = iter_audio_blocks(src.path, rate, src.start, src.duration, BLOCK_SECONDS, stats)
    return str(src.name or src.path), src, blocks


def prepare(
    item, index: int, rate: int, opts: DecodeOptions, vad: SileroVad | None, vad_opts: VadOptions | None
) -> Prepared:
    """Read `item` once and plan its pieces. Raises AudioError naming the input."""
    stats = AudioStats()
    name, src, blocks = _blocks(item, index, rate, stats)
    meter, stream = EnergyMeter(rate), (vad.stream() if vad is not None else None)
    kept: list[np.ndarray] | None = []
    probs: list[np.ndarray] = []
    total = 0
    for block in blocks:
        total += len(block)
        meter.feed(block)
        if stream is not None:
            probs.append(stream.feed(block))
        if kept is not None:
            kept.append(block)
            if total > KEEP_SECONDS * rate and src is not None:
                kept = None  # too long to hold: read again when decoding (an array is in memory already)
    if stream is not None:
        probs.append(stream.feed(np.zeros(0, np.float32), final=True))
        regions = speech_regions(np.concatenate(probs), total, vad_opts)
    else:
        regions = [(0, total)]
    gap = vad_opts.merge_gap_s if stream is not None else 0.0
    pieces = plan_pieces(regions, meter.smoothed(), rate, opts.max_segment_seconds, opts.min_segment_seconds, gap)
    wave = None if kept is None else (kept[0] if len(kept) == 1 else np.concatenate(kept))
    return Prepared(index, name, total, pieces, wave, None if wave is not None else src, input_warnings(stats))


def iter_pieces(prep: Prepared, rate: int) -> Iterator[np.ndarray]:
    """The samples of each planned piece, in order (a second read for long inputs)."""
    if prep.wave is not None:
        for a, b in prep.pieces:
            yield prep.wave[a:b]
        return
    src = prep.source
    assert src is not None
    pending = iter(prep.pieces)
    span = next(pending, None)
    buf, buf_start = np.zeros(0, np.float32), 0  # buf holds samples [buf_start, buf_start + len(buf))
    for block in iter_audio_blocks(src.path, rate, src.start, src.duration, BLOCK_SECONDS):
        buf = np.concatenate([buf, block])
        while span is not None and buf_start + len(buf) >= span[1]:
            yield buf[span[0] - buf_start : span[1] - buf_start].copy()
            span = next(pending, None)
        # drop what no piece needs any more (never past the end: buf_start is where the next block starts)
        keep_from = min(span[0] if span is not None else buf_start + len(buf), buf_start + len(buf))
        buf, buf_start = buf[keep_from - buf_start :], keep_from
        if span is None:
            return
    if span is not None:
        raise AudioError(prep.name, "changed while being read (shorter on the second read)")
