"""Count baselines over the ASR's units, the bar a teacher must clear before anyone distils from
it (a teacher that predicts unit frequencies teaches the student nothing it cannot count).

Three models, counted from the teacher text's sentences (each sentence is <bos> y <eos>):
- unigram  p(w) = (c(w) + 1) / (N + |C|) over C = units ∪ {<eos>} (add-one);
- bigram   p(w | v) = max(c(v w) − d, 0) / c(v ·) + d · n(v ·) / c(v ·) · p(w)   (absolute
  discounting interpolated with the unigram; n(v ·) = distinct followers of v; p(w) if v unseen);
- two-sided p(w | l, r) for a masked unit w between its neighbours l and r:
  max(c(l w r) − d, 0) / c(l · r) + d · n(l · r) / c(l · r) · q(w | l, r), where
  q(w | l, r) ∝ p(w | l) · p(r | w) over the units (the bigram on both sides), q itself if (l, r)
  was never seen (q = p(w | l) when no unit is ever followed by r, as <unk> may be: r tells nothing).
  This is "the simple count model that predicts a masked unit from one unit on each
  side" of the issue; it sees one unit of context each way, BERT sees the whole window.

Masked models (unigram restricted to units, two-sided) score each unit of a sentence with the rest
of the sentence known — the same task and the same positions as BERT's pseudo-perplexity. The LM
models (unigram, bigram) score y and <eos> left to right, like the LM teacher's perplexity.
Specials other than <bos>/<eos> never occur. Counts are numpy arrays (V ≤ a few thousand): dense
unigram/bigram tables, sorted trigram keys looked up with searchsorted."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..text import BOS_ID, EOS_ID, MASK_ID


@dataclass(frozen=True)
class Scores:
    perplexity: float
    top1: float
    tokens: int


def discounted_middle(q: np.ndarray, mids: np.ndarray, counts: np.ndarray, d: float) -> np.ndarray:
    """The two-sided models' last level: max(c(l w r) − d, 0) / c(l · r) + d · n(l · r) / c(l · r) · q(w),
    for the middles `mids` seen between one (l, r) `counts` times; q itself when (l, r) was never seen."""
    c = counts.astype(np.float64)
    total = c.sum()
    if total == 0:
        return q
    p = (d * len(c) / total) * q
    p[mids] += np.maximum(c - d, 0.0) / total
    return p


class CountModels:
    def __init__(self, sentences: list[list[int]], vocab_size: int, discount: float = 0.75) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError("discount must be in (0, 1]")
        v = self.vocab_size = vocab_size
        self.d = discount
        self.units = np.arange(MASK_ID + 1, v)
        seqs = [np.array([BOS_ID, *s, EOS_ID], dtype=np.int64) for s in sentences if s]
        flat = np.concatenate(seqs) if seqs else np.array([BOS_ID, EOS_ID], dtype=np.int64)
        # unigram over units ∪ {eos}: everything but <bos>
        uni = np.bincount(flat[flat != BOS_ID], minlength=v).astype(np.float64)
        cand = np.zeros(v, bool)
        cand[self.units] = True
        cand[EOS_ID] = True
        self.unigram = np.where(cand, uni + 1.0, 0.0) / (uni[cand].sum() + cand.sum())
        # bigram tables [v, v] from consecutive pairs inside sentences
        a = np.concatenate([s[:-1] for s in seqs]) if seqs else np.zeros(0, np.int64)
        b = np.concatenate([s[1:] for s in seqs]) if seqs else np.zeros(0, np.int64)
        big = np.zeros((v, v))
        np.add.at(big, (a, b), 1.0)
        self.bigram = self._interpolate(big, self.unigram)
        # trigram (l, w, r) counts for the two-sided model, as sorted keys l·v² + w·v + r
        tri = np.concatenate([s[:-2] * v * v + s[1:-1] * v + s[2:] for s in seqs if len(s) >= 3] or [np.zeros(0, int)])
        self.tri_keys, self.tri_counts = np.unique(tri, return_counts=True)

    def _interpolate(self, counts: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """Rows of absolute-discounted counts interpolated with `lower` (rows without counts: lower)."""
        total = counts.sum(axis=1, keepdims=True)
        distinct = (counts > 0).sum(axis=1, keepdims=True)
        safe = np.maximum(total, 1.0)
        p = np.maximum(counts - self.d, 0.0) / safe + (self.d * distinct / safe) * lower[None]
        return np.where(total > 0, p, lower[None])

    def two_sided(self, left: int, right: int) -> np.ndarray:
        """p(w | left, right) as a vector over the vocabulary (zero outside the units)."""
        v = self.vocab_size
        q = np.zeros(v)
        after = self.bigram[self.units, right]  # p(r | w); all 0 when r never follows a unit: p(w | l) alone
        q[self.units] = self.bigram[left, self.units] * (after if after.any() else 1.0)
        q /= q.sum()
        lo = np.searchsorted(self.tri_keys, left * v * v + right)
        hi = np.searchsorted(self.tri_keys, left * v * v + (v - 1) * v + right, side="right")
        keys, counts = self.tri_keys[lo:hi], self.tri_counts[lo:hi]
        hit = keys % v == right  # keys between lo and hi with the same left; keep the right r
        return discounted_middle(q, (keys[hit] // v) % v, counts[hit], self.d)

    @cached_property
    def _pair_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The trigram counts re-keyed pair-major, (l·v + r)·v + w sorted: (keys, middles w, counts)."""
        v = self.vocab_size
        left, mid, right = self.tri_keys // (v * v), (self.tri_keys // v) % v, self.tri_keys % v
        keys = (left * v + right) * v + mid
        order = np.argsort(keys, kind="stable")
        return keys[order], mid[order], self.tri_counts[order]

    def two_sided_batch(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """two_sided for many pairs at once: [n, V], row i = p(w | left[i], right[i]) (the same
        operations, vectorised: the rows equal two_sided's)."""
        v, d = self.vocab_size, self.d
        left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
        p = np.zeros((len(left), v))
        after = self.bigram[np.ix_(self.units, right)].T
        after[~after.any(axis=1)] = 1.0  # r never follows a unit (<unk>): p(w | l) alone
        p[:, self.units] = self.bigram[left][:, self.units] * after
        p /= p.sum(axis=1, keepdims=True)
        keys, mids, counts = self._pair_keys
        base = (left * v + right) * v
        lo, hi = np.searchsorted(keys, base), np.searchsorted(keys, base + v)
        n_seen = hi - lo  # n(l · r): distinct middles seen between the pair
        rows = np.repeat(np.arange(len(left)), n_seen)
        at = np.arange(n_seen.sum()) - np.repeat(np.cumsum(n_seen) - n_seen, n_seen) + np.repeat(lo, n_seen)
        c = counts[at].astype(np.float64)
        total = np.zeros(len(left))
        np.add.at(total, rows, c)
        seen = total > 0
        p[seen] *= (d * n_seen[seen] / total[seen])[:, None]
        np.add.at(p, (rows, mids[at]), np.maximum(c - d, 0.0) / total[rows])
        return p

    def masked_unigram(self) -> np.ndarray:
        p = np.zeros(self.vocab_size)
        p[self.units] = self.unigram[self.units]
        return p / p.sum()

    # -- scoring on dev sentences ---------------------------------------------------------------
    def score_masked_unigram(self, sentences: list[list[int]]) -> Scores:
        p = self.masked_unigram()
        targets = np.array([t for s in sentences for t in s], dtype=np.int64)
        return _scores(np.log(p[targets]), targets == int(np.argmax(p)))

    def score_two_sided(self, sentences: list[list[int]]) -> Scores:
        logp, hit = [], []
        for s in sentences:
            padded = [BOS_ID, *s, EOS_ID]
            for i, w in enumerate(s, 1):
                p = self.two_sided(padded[i - 1], padded[i + 1])
                logp.append(math.log(p[w]))
                hit.append(int(np.argmax(p)) == w)
        return _scores(np.array(logp), np.array(hit))

    def score_lm_unigram(self, sentences: list[list[int]]) -> Scores:
        targets = np.array([t for s in sentences for t in [*s, EOS_ID]], dtype=np.int64)
        return _scores(np.log(self.unigram[targets]), targets == int(np.argmax(self.unigram)))

    def score_bigram(self, sentences: list[list[int]]) -> Scores:
        prev = np.array([t for s in sentences for t in [BOS_ID, *s]], dtype=np.int64)
        nxt = np.array([t for s in sentences for t in [*s, EOS_ID]], dtype=np.int64)
        return _scores(np.log(self.bigram[prev, nxt]), self.bigram[prev].argmax(axis=1) == nxt)


def _scores(logp: np.ndarray, hit: np.ndarray) -> Scores:
    n = int(len(logp))
    return Scores(math.exp(-float(logp.sum()) / max(n, 1)), float(hit.sum()) / max(n, 1), n)
