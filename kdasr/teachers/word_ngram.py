"""A word-level two-sided count model: the bar for a teacher's whole-word masked predictions (the
unit-level models in kdasr.teachers.ngram mostly measure spelling completion with 256 units).

A word is a run of units that starts at a piece beginning with '▁' (kdasr.teachers.word_quality);
its identity is its tuple of unit ids. Word ids: 0 = <s>, 1 = </s>, 2 = <unk> (a dev word not in
the teacher text), 3.. the teacher text's words. Counted from the teacher text's sentences
(<s> w1 .. wn </s>), the same way as the unit-level two-sided model, one level up:
- unigram  p(w) = (c(w) + 1) / (N + |C|) over C = every id but <s> (add-one);
- bigram   p(w | v) = max(c(v w) − d, 0) / c(v ·) + d · n(v ·) / c(v ·) · p(w)   (p(w) if v unseen);
- two-sided p(w | a, b) for a masked word w between the previous word a and the next word b:
  max(c(a w b) − d, 0) / c(a · b) + d · n(a · b) / c(a · b) · q(w | a, b), with
  q(w | a, b) ∝ p(w | a) · p(b | w) (the bigram on both sides), q itself if (a, b) was never seen.
The masked word's distribution is over the teacher text's words only (renormalised). Vectors are
dense over the word vocabulary; bigram and trigram counts are sorted keys found with searchsorted."""

from __future__ import annotations

import numpy as np

from .ngram import discounted_middle

BOS, EOS, UNK = 0, 1, 2
FIRST_WORD = 3


class WordCounts:
    def __init__(self, sentences: list[list[tuple[int, ...]]], discount: float = 0.75) -> None:
        if not 0.0 < discount <= 1.0:
            raise ValueError("discount must be in (0, 1]")
        self.d = discount
        self.index: dict[tuple[int, ...], int] = {}
        for s in sentences:
            for w in s:
                self.index.setdefault(w, FIRST_WORD + len(self.index))
        n = self.size = FIRST_WORD + len(self.index)
        words = list(self.index)
        self.first_unit = np.array([-1] * FIRST_WORD + [w[0] for w in words], dtype=np.int64)
        self.n_units = np.array([0] * FIRST_WORD + [len(w) for w in words], dtype=np.int64)
        seqs = [np.array([BOS, *(self.index[w] for w in s), EOS], dtype=np.int64) for s in sentences if s]
        flat = np.concatenate(seqs) if seqs else np.array([BOS, EOS], dtype=np.int64)
        uni = np.bincount(flat[flat != BOS], minlength=n).astype(np.float64) + 1.0
        uni[BOS] = 0.0
        self.unigram = uni / uni.sum()
        a = np.concatenate([s[:-1] for s in seqs]) if seqs else np.zeros(0, np.int64)
        b = np.concatenate([s[1:] for s in seqs]) if seqs else np.zeros(0, np.int64)
        self.row_keys, self.row_counts = np.unique(a * n + b, return_counts=True)  # sorted by (a, b)
        self.col_keys, self.col_counts = np.unique(b * n + a, return_counts=True)  # sorted by (b, a)
        self.total = np.bincount(a, minlength=n).astype(np.float64)  # c(v ·)
        self.distinct = np.bincount(self.row_keys // n, minlength=n).astype(np.float64)  # n(v ·)
        tri = [(s[:-2] * n + s[2:]) * n + s[1:-1] for s in seqs if len(s) >= 3]  # keys (a, b, w)
        self.tri_keys, self.tri_counts = np.unique(np.concatenate(tri or [np.zeros(0, np.int64)]), return_counts=True)
        self.candidates = np.zeros(n, bool)
        self.candidates[FIRST_WORD:] = True

    def word_id(self, word: tuple[int, ...]) -> int:
        return self.index.get(word, UNK)

    def _range(self, keys: np.ndarray, prefix: int) -> slice:
        n = self.size
        return slice(int(np.searchsorted(keys, prefix * n)), int(np.searchsorted(keys, (prefix + 1) * n)))

    def following(self, v: int) -> np.ndarray:
        """p(w | v) for every w."""
        if self.total[v] == 0:
            return self.unigram.copy()
        t = self.total[v]
        p = (self.d * self.distinct[v] / t) * self.unigram
        r = self._range(self.row_keys, v)
        p[self.row_keys[r] % self.size] += np.maximum(self.row_counts[r] - self.d, 0.0) / t
        return p

    def preceding(self, b: int) -> np.ndarray:
        """p(b | w) for every w (the bigram's column b)."""
        t = np.maximum(self.total, 1.0)
        p = np.where(self.total > 0, self.d * self.distinct / t * self.unigram[b], self.unigram[b])
        r = self._range(self.col_keys, b)
        prev = self.col_keys[r] % self.size
        p[prev] += np.maximum(self.col_counts[r] - self.d, 0.0) / t[prev]
        return p

    def masked_unigram(self) -> np.ndarray:
        p = np.where(self.candidates, self.unigram, 0.0)
        return p / p.sum()

    def two_sided(self, a: int, b: int) -> np.ndarray:
        """p(w | a, b) over the word ids (zero outside the teacher text's words)."""
        q = np.where(self.candidates, self.following(a) * self.preceding(b), 0.0)
        q /= q.sum()
        r = self._range(self.tri_keys, a * self.size + b)
        return discounted_middle(q, self.tri_keys[r] % self.size, self.tri_counts[r], self.d)

    def first_unit_marginal(self, p: np.ndarray, vocab_size: int) -> np.ndarray:
        """p(first unit = u) = Σ p(w) over the words w that start with u, as a vector over the units."""
        keep = self.candidates
        return np.bincount(self.first_unit[keep], weights=p[keep], minlength=vocab_size)


def rank(p: np.ndarray, target: int) -> int:
    """0-based rank of `target` in `p`, ties broken towards the lower id (as np.argmax does)."""
    return int((p > p[target]).sum() + (p[:target] == p[target]).sum())
