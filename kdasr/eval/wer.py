"""WER/CER with jiwer over a manifest, with per-utterance hypotheses. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


@dataclass(frozen=True)
class ErrorRates:
    wer: float  # percent
    cer: float  # percent
    utterances: int
    words: int


def error_rates(refs: list[str], hyps: list[str]) -> ErrorRates:
    if not refs:
        raise ValueError("no utterances to score")
    # jiwer rejects empty references; an empty reference scored against a hypothesis is all insertions
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    refs_ne, hyps_ne = [r for r, _ in pairs], [h for _, h in pairs]
    return ErrorRates(
        wer=100 * jiwer.wer(refs_ne, hyps_ne),
        cer=100 * jiwer.cer(refs_ne, hyps_ne),
        utterances=len(refs),
        words=sum(len(r.split()) for r in refs_ne),
    )
