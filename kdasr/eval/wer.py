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


@dataclass(frozen=True)
class UtteranceScore:
    """One utterance's counts, the unit a paired bootstrap resamples (kdasr.eval.bootstrap)."""

    id: str
    word_errors: int
    words: int  # reference words
    char_errors: int
    chars: int  # reference characters (spaces included, as jiwer counts them)


def _per_sentence(alignments) -> list[tuple[int, int]]:
    """(errors, reference length) per sentence from jiwer's alignment chunks."""
    out = []
    for chunks in alignments:
        errors = ref_len = 0
        for c in chunks:
            ref_span, hyp_span = c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx
            ref_len += ref_span
            if c.type != "equal":
                errors += max(ref_span, hyp_span)  # substitute: equal spans; delete / insert: one is 0
        out.append((errors, ref_len))
    return out


def utterance_scores(ids: list[str], refs: list[str], hyps: list[str]) -> list[UtteranceScore]:
    """Per-utterance word and character errors; their sums are `error_rates`' totals."""
    if not (len(ids) == len(refs) == len(hyps)):
        raise ValueError(f"{len(ids)} ids, {len(refs)} references, {len(hyps)} hypotheses")
    if not refs:
        return []
    refs = [" ".join(r.split()) for r in refs]
    hyps = [" ".join(h.split()) for h in hyps]
    words = _per_sentence(jiwer.process_words(refs, hyps).alignments)
    chars = _per_sentence(jiwer.process_characters(refs, hyps).alignments)
    return [UtteranceScore(i, we, wn, ce, cn) for i, (we, wn), (ce, cn) in zip(ids, words, chars)]
