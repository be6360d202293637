"""Which game line a clip speaks, when the archive's names leave it open: the reference recogniser's
transcript is matched to the nearest line, and the match is kept only within a stated distance.

The distance is the character error rate between normalised texts (edit distance / reference
length): whisper tiny.en's errors on clean speech are mostly a word or two, while a wrong line of
similar length differs in most characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

MAX_CER = 0.25  # stated in build info; above it the clip is dropped as unpairable


@dataclass(frozen=True)
class Match:
    index: int  # position in the candidates, -1 when none is close enough
    cer: float  # of the best candidate


def nearest_line(transcript: str, candidates: Sequence[str], max_cer: float = MAX_CER) -> Match:
    """The candidate (normalised text) nearest to a normalised transcript, by character error rate."""
    best, best_cer = -1, float("inf")
    for i, text in enumerate(candidates):
        if not text:
            continue
        cer = Levenshtein.distance(transcript, text) / len(text)
        if cer < best_cer:
            best, best_cer = i, cer
    return Match(best if best_cer <= max_cer else -1, best_cer)
