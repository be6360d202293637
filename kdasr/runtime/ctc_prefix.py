"""Batched CTC prefix scoring in numpy (joint CTC/attention decoding, Watanabe et al. 2017).

For N hypotheses at once and M candidate tokens each, the prefix scores of all N x M extensions
come from one vectorised log-sum-exp over time; the forward variables (a recursion over frames)
only for the extensions the search keeps. A hypothesis's state is its prefix's forward variables
r [T, 2] (non-blank / blank ending) and its prefix score psi.
The score of a candidate is psi(prefix + c) - psi(prefix); for <eos> it is the full-sequence
CTC log-probability of the prefix minus psi(prefix)."""

from __future__ import annotations

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
        same = cand == state.last[:, None]
        if t_max > start:
            # phi[t-1] + x_c[t] over frames [start, t_max): phi is r_sum, or r_b for a repeated label
            xct = np.ascontiguousarray(self.xt[rows[:, None], cand, start:t_max].transpose(2, 0, 1))  # [t, N, M]
            terms = xct + r_sum[start - 1 : t_max - 1, :, None]
            i, j = np.nonzero(same)
            terms[:, i, j] = xct[:, i, j] + state.r[start - 1 : t_max - 1, i, 1]
            np.copyto(terms, NEG_INF, where=~self.valid[start:t_max, rows][:, :, None])
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
        r = np.full((max(p.t_max, 1), 2, s), NEG_INF, np.float32)
        if p.prefix_len == 0:
            r[0, 0] = self.xt[urow, tok, 0]
        if p.t_max > p.start:
            t0, t1 = p.start, p.t_max
            xct = np.ascontiguousarray(self.xt[urow, tok, t0:t1].T)  # [t, S]
            xb = self.x[t0:t1, urow, self.blank]  # [t, S]
            same = tok == p.state.last[src]
            # per frame, the second operand (phi[t-1], r_b[t-1]), stacked
            pair = np.empty((t1 - t0, 2, s), np.float32)
            pair[:, 0] = np.where(same[None], p.state.r[t0 - 1 : t1 - 1, src, 1], p.r_sum[t0 - 1 : t1 - 1, src])
            buf = np.empty((2, s), np.float32)
            with np.errstate(invalid="ignore"):
                for i, t in enumerate(range(t0, t1)):
                    pair[i, 1] = r[t - 1, 1]
                    _logaddexp(r[t - 1, 0], pair[i], out=buf)
                    np.add(buf[0], xct[i], out=r[t, 0])
                    np.add(buf[1], xb[i], out=r[t, 1])
        return CTCState(np.ascontiguousarray(r.transpose(0, 2, 1)), p.log_psi[src, col], tok)
