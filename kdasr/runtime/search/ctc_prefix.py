"""Batched CTC prefix scoring in numpy (joint CTC/attention decoding, Watanabe et al. 2017).

For N hypotheses at once and M candidate tokens each, the prefix scores of all N x M extensions
come from one vectorised log-sum-exp over time; the forward variables (a recursion over frames)
only for the extensions the search keeps. A hypothesis's state is its prefix's forward variables
r [T, 2] (non-blank / blank ending) and its prefix score psi.
The score of a candidate is psi(prefix + c) - psi(prefix); for <eos> it is the full-sequence
CTC log-probability of the prefix minus psi(prefix)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEG_INF = np.float32(-np.inf)


def logaddexp(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """log(exp(a) + exp(b)) in float32, -inf safe; ~4x faster than np.logaddexp (whose scalar
    exp/log1p per element made it most of the CTC prefix scorer's time). `out`: shape of a + b."""
    with np.errstate(invalid="ignore"):  # both -inf: nan here, and fmax then keeps hi (-inf)
        return _logaddexp(a, b, out)


def _logaddexp(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """logaddexp without its errstate (the caller holds one: a context per frame costs more than the frame)."""
    hi = np.maximum(a, b)
    d = np.minimum(a, b, out=out)
    np.subtract(d, hi, out=d)
    np.exp(d, out=d)
    np.log1p(d, out=d)
    np.add(hi, d, out=d)
    return np.fmax(d, hi, out=d)


def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(x))) along axis, -inf when every term is -inf."""
    if x.shape[axis] == 0:
        return np.full(np.delete(x.shape, axis), NEG_INF, np.float32)
    hi = np.max(x, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(hi), hi, 0.0).astype(np.float32)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - safe), axis=axis)) + np.squeeze(safe, axis)
    return out.astype(np.float32)


@dataclass
class CTCState:
    r: np.ndarray  # [T, N, 2] float32: log forward variables of each prefix (n, b); T >= the rows' frames
    psi: np.ndarray  # [N] prefix scores
    last: np.ndarray  # [N] last label of the prefix (-1 for the empty prefix)


@dataclass
class CTCPending:
    """A scored step, kept until the search has chosen which extensions continue."""

    state: CTCState  # the hypotheses that were extended
    rows: np.ndarray  # [N] their utterances
    r_sum: np.ndarray  # [t_max, N] log(r_n + r_b) of each prefix
    log_psi: np.ndarray  # [N, M] prefix score of each extension
    prefix_len: int
    start: int  # first frame of the recursion
    t_max: int  # frames of the longest utterance among the rows


class CTCPrefixScorer:
    """Holds the CTC log-probs of a batch of utterances; scores hypotheses row by row.

    `rows` maps each hypothesis to its utterance in `logprobs` [U, T, V]."""

    kind = "partial"  # scores the candidates the full scorers pre-select (scorers.PARTIAL)

    def __init__(self, logprobs: np.ndarray, lens: np.ndarray, blank: int, eos: int) -> None:
        self.x = np.ascontiguousarray(logprobs.transpose(1, 0, 2), dtype=np.float32)  # [T, U, V]
        # [U, V, T]: a (utterance, token) pair's log-probs over time are contiguous, so gathering the
        # candidates of every hypothesis copies whole rows instead of T x N x M scattered floats
        self.xt = np.ascontiguousarray(logprobs.transpose(0, 2, 1), dtype=np.float32)
        self.lens = lens.astype(np.int64)
        self.blank, self.eos = blank, eos
        t = np.arange(self.x.shape[0])[:, None]
        # frames past an utterance's end contribute nothing
        self.valid = t < self.lens[None, :]  # [T, U]

    def init_state(self, rows: np.ndarray) -> CTCState:
        xb = np.where(self.valid[:, rows], self.x[:, rows, self.blank], 0.0)
        r = np.full((self.x.shape[0], len(rows), 2), NEG_INF, np.float32)
        r[:, :, 1] = np.cumsum(xb, axis=0)
        return CTCState(r, np.zeros(len(rows), np.float32), np.full(len(rows), -1, np.int64))

    def score(
        self, state: CTCState, rows: np.ndarray, cand: np.ndarray, prefix_len: int
    ) -> tuple[np.ndarray, CTCPending]:
        """cand [N, M] token ids -> (scores [N, M], what `select` needs to extend the chosen ones).

        psi(prefix + c) needs no recursion: it is a log-sum-exp over frames of phi[t-1] + x_c[t]
        (and x_c[0] for the empty prefix), done for all N x M candidates at once. The forward
        variables of an extended prefix (the sequential recursion over frames) are needed only for
        the candidates the search keeps, so `select` computes them for those alone (beam of the
        N x M), with the same float32 operations element by element as for all of them."""
        n, m = cand.shape
        t_max = int(self.lens[rows].max()) if n else 0
        start = max(1, prefix_len)  # a prefix of L labels + c cannot end before frame L
        # frames past the longest live utterance are never read (states keep only t_max of them)
        r_sum = logaddexp(state.r[: max(t_max, 1), :, 0], state.r[: max(t_max, 1), :, 1])  # [t_max, N]
        if t_max > start:
            # phi[t-1] + x_c[t] over frames [start, t_max): phi is r_sum, or r_b for a repeated label.
            # Frames past an utterance's end are -inf in the small [t, N] phi term, so no mask pass
            # over the t x N x M terms is needed; time leads, so the log-sum-exp over it reduces
            # whole [N, M] planes at a time
            valid = self.valid[start:t_max, rows]  # [t, N]
            phi = np.where(valid, r_sum[start - 1 : t_max - 1], NEG_INF)
            gathered = self.xt[rows[:, None], cand, start:t_max]  # [N, M, t]
            i, j = np.nonzero(cand == state.last[:, None])
            repeat = gathered[i, j].T + np.where(valid[:, i], state.r[start - 1 : t_max - 1, i, 1], NEG_INF)
            terms = np.ascontiguousarray(gathered.transpose(2, 0, 1))  # [t, N, M]
            np.add(terms, phi[:, :, None], out=terms)
            terms[:, i, j] = repeat
        else:
            terms = np.full((0, n, m), NEG_INF, np.float32)
        if prefix_len == 0:
            terms = np.concatenate([self.xt[rows[:, None], cand, 0][None], terms])
        log_psi = logsumexp(terms, axis=0)
        # <eos>: the whole prefix, ending at the utterance's last frame
        last = np.maximum(self.lens[rows] - 1, 0)
        full = r_sum[last, np.arange(n)]
        log_psi = np.where(cand == self.eos, full[:, None], log_psi)
        pending = CTCPending(state, rows, r_sum, log_psi, prefix_len, start, t_max)
        return log_psi - state.psi[:, None], pending

    def select(self, pending: CTCPending, cand: np.ndarray, src: np.ndarray, col: np.ndarray) -> CTCState:
        """The state of each kept extension: hypothesis src[i] + token cand[src[i], col[i]].
        r[t] = (r_n, r_b)[t]; frame t: r_n = lae(r_n[t-1], phi[t-1]) + x_c[t],
        r_b = lae(r_n[t-1], r_b[t-1]) + x_b[t]."""
        p = pending
        tok = cand[src, col].astype(np.int64)
        urow = p.rows[src]
        s = len(src)
        # the next step's rows are among these, so no later step reads frames past t_max
        r = np.full((max(p.t_max, 1), s, 2), NEG_INF, np.float32)
        if p.prefix_len == 0:
            r[0, :, 0] = self.xt[urow, tok, 0]
        if p.t_max > p.start:
            t0, t1 = p.start, p.t_max
            xc = self.xt[urow, tok, t0:t1].T  # [t, S]
            xb = self.x[t0:t1, urow, self.blank]  # [t, S]
            same = tok == p.state.last[src]
            phi = np.where(same[None], p.state.r[t0 - 1 : t1 - 1, src, 1], p.r_sum[t0 - 1 : t1 - 1, src])
            r[t0:t1, :, 0] = forward_recursion(phi, xc, r[t0 - 1, :, 0])
            # r_b is driven by r_n of the frame before, now known for every frame
            r[t0:t1, :, 1] = forward_recursion(r[t0 - 1 : t1 - 1, :, 0], xb, r[t0 - 1, :, 1])
        return CTCState(r, p.log_psi[src, col], tok)


def forward_recursion(drive: np.ndarray, x: np.ndarray, init: np.ndarray) -> np.ndarray:
    """out[t] = lae(out[t-1], drive[t]) + x[t] for t = 0..T-1, with out[-1] = init; [T, S] float32.

    Unrolled, out[t] = lae(init + C[0..t], W[t]), where C sums x and W is the same recursion from
    -inf. Frames are cut into blocks of about sqrt(T): W and the in-block sums of x are computed
    for every block at once (a loop over the frames of one block), then the blocks are chained
    (a loop over blocks). ~2 sqrt(T) vectorised steps instead of T frame by frame: the frame loop
    was overhead-bound (~10 numpy calls on a few hundred floats per frame)."""
    t, s = x.shape
    size = max(1, math.isqrt(t))
    n_blocks = -(-t // size)
    pad = n_blocks * size - t  # padding frames at the end: their outputs are dropped
    d = np.concatenate([drive, np.full((pad, s), NEG_INF, np.float32)]).reshape(n_blocks, size, s)
    xs = np.concatenate([x, np.zeros((pad, s), np.float32)]).reshape(n_blocks, size, s)
    w = np.empty_like(d)  # the recursion from -inf inside each block
    c = np.empty_like(d)  # x summed from each block's first frame (np.cumsum over this axis is slower)
    with np.errstate(invalid="ignore"):
        np.add(d[:, 0], xs[:, 0], out=w[:, 0])
        c[:, 0] = xs[:, 0]
        for k in range(1, size):
            np.add(_logaddexp(w[:, k - 1], d[:, k]), xs[:, k], out=w[:, k])
            np.add(c[:, k - 1], xs[:, k], out=c[:, k])
        # chain the blocks on their last frames only, then every frame of every block at once
        into = np.empty((n_blocks, s), np.float32)  # out[-1] of each block: the frame before it
        into[0] = init
        for b in range(1, n_blocks):
            _logaddexp(into[b - 1] + c[b - 1, -1], w[b - 1, -1], out=into[b])
        out = _logaddexp(into[:, None] + c, w)
    return out.reshape(n_blocks * size, s)[:t]
