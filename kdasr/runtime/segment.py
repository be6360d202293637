"""Long audio: cut a waveform longer than the model's trained range at low-energy points.

Energy is measured on 10 ms frames and smoothed over 300 ms, so a cut lands in a pause rather
than between two syllables. Each cut is the quietest point between `min_seconds` and
`max_seconds` after the previous one (the latest of the near-quietest frames, so pieces stay
long); the last piece may be shorter. numpy only."""

from __future__ import annotations

import numpy as np

HOP_S = 0.010
SMOOTH_S = 0.300
QUIET_MARGIN = 1.0  # natural-log energy units (~4.3 dB) above the window's minimum


def frame_energy(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Smoothed log energy per 10 ms frame."""
    hop = max(1, int(HOP_S * sample_rate))
    n = len(wave) // hop
    frames = wave[: n * hop].reshape(n, hop).astype(np.float64)
    energy = np.log((frames**2).mean(axis=1) + 1e-10)
    width = max(1, int(SMOOTH_S / HOP_S))
    return np.convolve(energy, np.ones(width) / width, mode="same")


def split_points(wave: np.ndarray, sample_rate: int, max_seconds: float, min_seconds: float) -> list[tuple[int, int]]:
    """[(start_sample, end_sample)] covering the whole wave, each at most max_seconds long."""
    total, max_n = len(wave), int(max_seconds * sample_rate)
    if total <= max_n:
        return [(0, total)]
    hop = max(1, int(HOP_S * sample_rate))
    min_seconds = min(min_seconds, max_seconds / 2)
    energy = frame_energy(wave, sample_rate)
    spans, cursor = [], 0
    while total - cursor > max_n:
        lo = (cursor + int(min_seconds * sample_rate)) // hop
        hi = (cursor + max_n) // hop
        if hi > lo:
            window = energy[lo:hi]
            quiet = np.nonzero(window <= window.min() + QUIET_MARGIN)[0]
            cut = (lo + int(quiet[-1])) * hop
        else:
            cut = cursor + max_n
        cut = min(max(cut, cursor + hop), cursor + max_n)
        spans.append((cursor, cut))
        cursor = cut
    spans.append((cursor, total))
    return spans
