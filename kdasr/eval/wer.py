"""WER/CER with jiwer from edit-operation counts. Torch-free.

An empty reference is scored, not dropped: every word its hypothesis holds is an insertion (a
recogniser that hallucinates on silence must pay for it). Rates are errors / reference words, so
a set whose references are all empty has no rate (NaN) but still reports its insertions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jiwer


@dataclass(frozen=True)
class ErrorRates:
    wer: float  # percent; NaN when the references hold no words
    cer: float  # percent; NaN when the references hold no characters
    utterances: int
    words: int  # reference words
    word_errors: int = 0  # substitutions + deletions + insertions
    insertions: int = 0
    empty_references: int = 0
    empty_reference_insertions: int = 0  # hypothesis words scored against empty references


def _rate(errors: int, total: int) -> float:
    if total:
        return 100 * errors / total
    return 0.0 if errors == 0 else math.nan


def error_rates(refs: list[str], hyps: list[str]) -> ErrorRates:
    if not refs:
        raise ValueError("no utterances to score")
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    refs = [" ".join(r.split()) for r in refs]
    hyps = [" ".join(h.split()) for h in hyps]
    w = jiwer.process_words(refs, hyps)
    c = jiwer.process_characters(refs, hyps)
    words = w.hits + w.substitutions + w.deletions
    errors = w.substitutions + w.deletions + w.insertions
    chars = c.hits + c.substitutions + c.deletions
    empty = [i for i, r in enumerate(refs) if not r]
    return ErrorRates(
        wer=_rate(errors, words),
        cer=_rate(c.substitutions + c.deletions + c.insertions, chars),
        utterances=len(refs),
        words=words,
        word_errors=errors,
        insertions=w.insertions,
        empty_references=len(empty),
        empty_reference_insertions=sum(len(hyps[i].split()) for i in empty),
    )
