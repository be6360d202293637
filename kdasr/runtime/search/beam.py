"""Batched beam search in numpy over the ONNX scorers.

All live utterances x all their hypotheses go through one call per scorer per step (batch =
utterances x beams, flattened). Each utterance keeps exactly `beam` rows; a step ranks, per
utterance, the beam x M candidate extensions by their summed weighted score and walks the best
2 x beam (fairseq's rule): an <eos> among the first `beam` ends a hypothesis, the first `beam`
others continue. The walk is array operations over all utterances at once (no Python loop over
hypotheses), and the CTC prefix scorer extends only the hypotheses the walk keeps.
An utterance leaves the batch once it has `beam` ended hypotheses or reaches its length limit
(where only <eos> is allowed), or earlier when its n-best can no longer change (scores only fall
as hypotheses grow: see `can_stop_early`), which gives the same n-best. Ties break by candidate
index (stable sort), the same rule as the torch reference, so results do not depend on batch size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...spec.decode_options import DecodeOptions
from .scorers import PARTIAL, PER_TOKEN, FullScorer, Scorer, kind_of

NEG_INF = -np.inf
# float32 scorers can return a log-prob or a CTC prefix-score difference a rounding error above 0
SCORE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]
    score: float  # ranking score: search score after length normalisation
    search_score: float  # summed weighted scorer scores
    alignment: tuple = ()  # word timestamps asked: per token (first frame, end frame, CTC posterior); align.py


def final_score(raw: float, length: int, length_penalty: float) -> float:
    return raw / (length + 1) ** length_penalty if length_penalty else raw


@dataclass(frozen=True)
class LengthNormalized:
    """The ranker: a finished hypothesis's score from its search score and length, raw / (length + 1)
    ** penalty (penalty 0: the raw search score). The seam for another ranking rule: any object with
    `__call__(raw, length)` and `keeps_order` (whether it ranks like the raw score, which lets the
    search stop early)."""

    penalty: float = 0.0

    def __call__(self, raw: float, length: int) -> float:
        return final_score(raw, length, self.penalty)

    @property
    def keeps_order(self) -> bool:
        return self.penalty == 0.0


def can_stop_early(scorers: dict[str, Scorer], weights: dict[str, float], ranker: LengthNormalized) -> bool:
    """Whether an utterance may leave once its n-best can no longer change: every scorer but the
    per-token ones gives log-probabilities (<= 0) under a non-negative weight, so a hypothesis's score
    only falls as it grows (by at most the per-token bonuses), and the ranker does not reorder them."""
    return ranker.keeps_order and all(weights[n] >= 0.0 for n, s in scorers.items() if kind_of(s) != PER_TOKEN)


def candidate_tokens(total: np.ndarray, eos: int, m: int) -> np.ndarray:
    """<eos> first, then the m best other tokens by the full scorers' weighted sum, best first,
    ties by token id (a stable sort's order). A partial selection then a sort of the m picked,
    instead of sorting the whole vocabulary; rows with a tie across the cut take the full sort."""
    masked = total.copy()
    masked[:, eos] = NEG_INF
    best = top_ranked(masked, m)
    return np.concatenate([np.full((len(total), 1), eos), best], axis=1)


def top_ranked(x: np.ndarray, n: int) -> np.ndarray:
    """np.argsort(-x, axis=1, kind="stable")[:, :n] (the n best per row, ties by index) without
    sorting whole rows: a partial selection, then a sort of the n picked; rows with a tie across
    the cut take the full sort. A whisper step ranks beam x 51,864 candidates per utterance, where
    the full stable sort cost twice the decoder itself."""
    if n >= x.shape[1]:
        return np.argsort(-x, axis=1, kind="stable")[:, :n]
    part = np.argpartition(-x, n - 1, axis=1)[:, :n]
    vals = np.take_along_axis(x, part, axis=1)
    order = np.take_along_axis(part, np.lexsort((part, -vals), axis=1), axis=1)
    ties = (x >= vals.min(axis=1, keepdims=True)).sum(axis=1) > n
    if ties.any():
        order[ties] = np.argsort(-x[ties], axis=1, kind="stable")[:, :n]
    return order


class StepScores:
    """One step's scoring of all live rows by every scorer of the weights dict, in three kinds (in
    this order, so the float sums are the same whatever the dict's order): the full scorers over the
    vocabulary, then the partial ones (CTC prefix) over a pre-beam of the full scorers' best
    candidates, then the per-token ones (the length bonus). A new scorer is a new entry of `scorers`
    with its weight, not a change to the search loop."""

    def __init__(self, scorers: dict[str, Scorer], weights: dict[str, float], eos: int, prebeam: float) -> None:
        self.weights, self.eos, self.prebeam = weights, eos, prebeam
        self.full: dict[str, FullScorer] = {n: s for n, s in scorers.items() if kind_of(s) not in (PARTIAL, PER_TOKEN)}
        self.partial = {n: s for n, s in scorers.items() if kind_of(s) == PARTIAL}
        self.bonus = sum(weights[n] * s.per_token for n, s in scorers.items() if kind_of(s) == PER_TOKEN)

    def init_states(self, rows: np.ndarray) -> tuple[dict, dict]:
        return ({n: s.init_state(rows) for n, s in self.full.items()},
                {n: s.init_state(rows) for n, s in self.partial.items()})

    def score(self, tokens, states, partial_states, rows, step, beam):
        """(candidate tokens [N, M], their weighted scores [N, M], next full states, pending partial states)."""
        total = None
        new_states = {}
        for name, scorer in self.full.items():
            logp, new_states[name] = scorer.score(tokens, states[name], rows)
            part = self.weights[name] * logp.astype(np.float64)
            total = part if total is None else total + part
        vocab = total.shape[1]
        pending = {}
        if self.partial:
            cand = candidate_tokens(total, self.eos, min(vocab - 1, math.ceil(self.prebeam * beam)))
            cand_scores = np.take_along_axis(total, cand, axis=1)
            for name, scorer in self.partial.items():
                scores, pending[name] = scorer.score(partial_states[name], rows, cand, step)
                cand_scores = cand_scores + self.weights[name] * scores.astype(np.float64)
        else:
            cand = np.broadcast_to(np.arange(vocab), total.shape)
            cand_scores = total
        return cand, cand_scores + self.bonus, new_states, pending

    def select(self, new_states, pending, cand, src, col) -> tuple[dict, dict]:
        return ({n: self.full[n].select_state(new_states[n], src) for n in self.full},
                {n: self.partial[n].select(pending[n], cand, src, col) for n in self.partial})


def beam_search(
    scorers: dict[str, Scorer],
    weights: dict[str, float],
    limits: np.ndarray,
    bos: int,
    eos: int,
    opts: DecodeOptions,
    ranker: LengthNormalized | None = None,
) -> list[list[Hypothesis]]:
    """limits [U]: most tokens per utterance. Returns, per utterance, its n-best, best first.
    `scorers`: name -> scorer, each weighted by weights[name] (StepScores; usually opts.weights());
    `opts`: the search's settings (beam, nbest, ctc_prebeam: the partial scorers see
    ceil(ctc_prebeam x beam) candidates per row); `ranker`: a finished hypothesis's score from its
    search score and length (default: LengthNormalized(opts.length_penalty)).

    The first step scores one row per utterance (all `beam` rows start as the same <bos>
    hypothesis, and only the first counts: the others start at -inf), then every utterance has
    `beam` rows. The walk over each utterance's ranked candidates is done for all utterances at
    once in numpy; prefixes are kept as a token matrix (one row per hypothesis)."""
    k, n_utts, nbest, prebeam = opts.beam, len(limits), opts.nbest, opts.ctc_prebeam
    ranker = ranker or LengthNormalized(opts.length_penalty)
    utts = np.arange(n_utts)
    width = 1  # rows per utterance this step
    rows = utts.copy()
    scores = np.zeros(n_utts)
    tokens = np.full(len(rows), bos, np.int64)
    hist = np.zeros((len(rows), 0), np.int64)  # the prefix of each row, one token per step
    step_scores = StepScores(scorers, weights, eos, prebeam)
    states, partial_states = step_scores.init_states(rows)
    finished: list[list[tuple[tuple[int, ...], float]]] = [[] for _ in range(n_utts)]
    n_finished = np.zeros(n_utts, np.int64)
    stop_early = can_stop_early(scorers, weights, ranker)
    top = np.full((n_utts, nbest), NEG_INF)  # each utterance's best `nbest` finished scores, best first
    step_gain = max(step_scores.bonus, 0.0) + SCORE_TOLERANCE  # the most one step can add to a search score
    ranks = np.arange(2 * k)
    step = 0
    while len(utts):
        cand, cand_scores, new_states, pending = step_scores.score(tokens, states, partial_states, rows, step, k)
        at_limit = step >= limits[rows]
        cand_scores = np.where(at_limit[:, None] & (cand != eos), NEG_INF, cand_scores)
        m = cand.shape[1]
        n_live_utts = len(utts)
        flat = (scores[:, None] + cand_scores).reshape(n_live_utts, width * m)
        # rows of -inf after the first `width` (the layout of `beam` rows) would rank last: same order
        order = top_ranked(flat, 2 * k)
        vals = np.take_along_axis(flat, order, axis=1)  # [U, w]: ranked candidate scores
        w = order.shape[1]
        src_rank = np.arange(n_live_utts)[:, None] * width + order // m  # the row each candidate extends
        col_rank = order % m
        tok_rank = cand[src_rank, col_rank]
        walked = np.cumprod(vals != NEG_INF, axis=1).astype(bool)  # the walk stops at the first -inf
        is_eos = tok_rank == eos
        ends = walked & is_eos & (ranks[:w] < k)[None]  # an <eos> among the first `beam` ends a hypothesis
        grows = walked & ~is_eos
        grows &= np.cumsum(grows, axis=1) <= k  # the first `beam` others continue
        for u, j in zip(*np.nonzero(ends)):
            finished[utts[u]].append((tuple(hist[src_rank[u, j]].tolist()), float(vals[u, j])))
        n_finished[utts] += ends.sum(axis=1)
        n_grow = grows.sum(axis=1)
        keep = (n_finished[utts] < k) & (n_grow > 0)
        first = np.argmax(grows, axis=1)  # the best continuing candidate of each utterance
        if stop_early:
            merged = np.concatenate([top[utts], np.where(ends, vals, NEG_INF)], axis=1)
            top[utts] = -np.sort(-merged, axis=1)[:, :nbest]
            best_live = vals[np.arange(n_live_utts), first]
            reach = best_live + (limits[utts] - step + 1) * step_gain
            keep &= ~((n_finished[utts] >= nbest) & (top[utts, nbest - 1] >= reach))  # no live one can reach the n-best
        # each kept utterance's continuing candidates in rank order, padded to `beam` with its best one at -inf
        pos = np.argsort(~grows, axis=1, kind="stable")[keep][:, :k]
        if pos.shape[1] < k:
            pos = np.concatenate([pos, np.repeat(pos[:, :1], k - pos.shape[1], axis=1)], axis=1)
        kept = np.nonzero(keep)[0]
        pad = ranks[None, :k] >= n_grow[kept][:, None]
        pos = np.where(pad, pos[:, :1], pos)
        src_a = src_rank[kept[:, None], pos].reshape(-1)
        col_a = np.where(pad, 0, col_rank[kept[:, None], pos]).reshape(-1)
        pad = pad.reshape(-1)
        new_scores = flat.reshape(-1, m)[src_a, col_a]
        new_scores[pad] = NEG_INF
        new_tokens = cand[src_a, col_a].astype(np.int64)
        hist = np.concatenate([hist[src_a], new_tokens[:, None]], axis=1)
        utts = utts[kept]
        width = k
        rows = np.repeat(utts, k)
        scores, tokens = new_scores, new_tokens
        states, partial_states = step_scores.select(new_states, pending, cand, src_a, col_a)
        step += 1
    out = []
    for hyps in finished:
        ranked = sorted(
            (Hypothesis(t, ranker(s, len(t)), s) for t, s in hyps),
            key=lambda h: -h.score,
        )
        out.append(ranked[:nbest])
    return out
