"""Long audio: where to cut a waveform into pieces the model can decode.

Energy is measured on 10 ms frames and smoothed over 300 ms, so a cut lands in a pause rather
than between two syllables. Each cut is the quietest point between `min_seconds` and
`max_seconds` after the previous one (the latest of the near-quietest frames, so pieces stay
long); the last piece may be shorter. With voice-activity detection the pieces are taken only
from speech regions: neighbouring regions closer than `merge_gap_s` are joined while the piece stays
within max_seconds, and a longer region is cut as above. `EnergyMeter` measures
the energy block by block, so a file of any length is planned without holding it. numpy only."""

from __future__ import annotations

import numpy as np

HOP_S = 0.010
SMOOTH_S = 0.300
QUIET_MARGIN = 1.0  # natural-log energy units (~4.3 dB) above the window's minimum


def _log_energy(frames: np.ndarray) -> np.ndarray:
    return np.log((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-10)


def smooth(energy: np.ndarray) -> np.ndarray:
    width = max(1, int(SMOOTH_S / HOP_S))
    return np.convolve(energy, np.ones(width) / width, mode="same")


def frame_energy(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Smoothed log energy per 10 ms frame."""
    hop = max(1, int(HOP_S * sample_rate))
    n = len(wave) // hop
    return smooth(_log_energy(wave[: n * hop].reshape(n, hop)))


class EnergyMeter:
    """Log energy per 10 ms frame of a signal fed in blocks of any size (same values as one call)."""

    def __init__(self, sample_rate: int) -> None:
        self.hop = max(1, int(HOP_S * sample_rate))
        self._pending = np.zeros(0, np.float32)
        self._parts: list[np.ndarray] = []

    def feed(self, block: np.ndarray) -> None:
        x = np.concatenate([self._pending, block]) if len(self._pending) else block
        n = len(x) // self.hop
        if n:
            self._parts.append(_log_energy(x[: n * self.hop].reshape(n, self.hop)))
        self._pending = x[n * self.hop :].copy()

    def smoothed(self) -> np.ndarray:
        return smooth(np.concatenate(self._parts)) if self._parts else np.zeros(0)


def split_region(
    energy: np.ndarray, first: int, last: int, sample_rate: int, max_seconds: float, min_seconds: float
) -> list[tuple[int, int]]:
    """[(start, end)] covering samples [first, last), each at most max_seconds, cut at quiet frames
    of `energy` (smoothed log energy per 10 ms frame of the whole signal)."""
    max_n = int(max_seconds * sample_rate)
    if last - first <= max_n:
        return [(first, last)]
    hop = max(1, int(HOP_S * sample_rate))
    min_seconds = min(min_seconds, max_seconds / 2)
    spans, cursor = [], first
    while last - cursor > max_n:
        lo = (cursor + int(min_seconds * sample_rate)) // hop
        hi = min((cursor + max_n) // hop, len(energy))
        if hi > lo:
            window = energy[lo:hi]
            quiet = np.nonzero(window <= window.min() + QUIET_MARGIN)[0]
            cut = (lo + int(quiet[-1])) * hop
        else:
            cut = cursor + max_n
        cut = min(max(cut, cursor + hop), cursor + max_n)
        spans.append((cursor, cut))
        cursor = cut
    spans.append((cursor, last))
    return spans


def split_points(wave: np.ndarray, sample_rate: int, max_seconds: float, min_seconds: float) -> list[tuple[int, int]]:
    """[(start_sample, end_sample)] covering the whole wave, each at most max_seconds long."""
    total = len(wave)
    if total <= int(max_seconds * sample_rate):
        return [(0, total)]
    return split_region(frame_energy(wave, sample_rate), 0, total, sample_rate, max_seconds, min_seconds)


def plan_pieces(
    regions: list[tuple[int, int]],
    energy: np.ndarray,
    sample_rate: int,
    max_seconds: float,
    min_seconds: float,
    merge_gap_s: float = 0.0,
) -> list[tuple[int, int]]:
    """Pieces to decode: speech regions joined while a piece stays within max_seconds and the pause
    is under merge_gap_s, longer ones cut at quiet points. Sorted, disjoint, inside the regions' hull."""
    max_n, gap_n = int(max_seconds * sample_rate), int(merge_gap_s * sample_rate)
    joined: list[list[int]] = []
    for a, b in regions:
        if joined and a - joined[-1][1] < max(gap_n, 1) and b - joined[-1][0] <= max_n:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    pieces: list[tuple[int, int]] = []
    for a, b in joined:
        pieces += split_region(energy, a, b, sample_rate, max_seconds, min_seconds)
    return pieces
