"""The CTC best-path collapse, written once: the runtime's CTC decoding and length limits, the
torch reference decoders and the trainer's dev CTC WER all call it. numpy only (torch-free)."""

from __future__ import annotations

import numpy as np


def ctc_collapse(best: np.ndarray, blank: int) -> list[int]:
    """One best path (frame-wise argmax ids [T]) -> tokens: repeats merged, then blanks dropped."""
    best = np.asarray(best)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    keep &= best != blank
    return best[keep].tolist()


def ctc_best_paths(best: np.ndarray, lens: np.ndarray, blank: int) -> list[list[int]]:
    """best [B, T] argmax ids, lens [B] valid frames -> each row's collapsed tokens."""
    return [ctc_collapse(row[:n], blank) for row, n in zip(np.asarray(best), np.asarray(lens).tolist())]
