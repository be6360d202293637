"""Batched CTC prefix scoring in numpy (joint CTC/attention decoding, Watanabe et al. 2017).

For N hypotheses at once and M candidate tokens each, the forward variables of every extended
prefix are computed in one pass over time, vectorised over [N, M]. A hypothesis's state is its
prefix's forward variables r [T, 2] (non-blank / blank ending) and its prefix score psi.
The score of a candidate is psi(prefix + c) - psi(prefix); for <eos> it is the full-sequence
CTC log-probability of the prefix minus psi(prefix)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEG_INF = np.float32(-np.inf)


def logaddexp(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """log(exp(a) + exp(b)) in float32, -inf safe; ~4x faster than np.logaddexp (whose scalar
    exp/log1p per element made it most of the CTC prefix scorer's time). `out`: shape of a + b."""
    hi = np.maximum(a, b)
    d = np.minimum(a, b, out=out)
    with np.errstate(invalid="ignore"):  # both -inf: nan here, and fmax then keeps hi (-inf)
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
    r: np.ndarray  # [T, N, 2] float32: log forward variables of each prefix (n, b)
    psi: np.ndarray  # [N] prefix scores
    last: np.ndarray  # [N] last label of the prefix (-1 for the empty prefix)


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
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """cand [N, M] token ids -> (scores [N, M], new forward variables [T, N, M, 2] and psi [N, M]).

        The recursion over frames is the only sequential part: each frame is one log-add-exp over
        the stacked (non-blank, blank) variables of all N x M extensions; psi is summed over
        frames afterwards in one vectorised log-sum-exp (it does not feed the recursion)."""
        n, m = cand.shape
        t_max = int(self.lens[rows].max()) if n else 0
        big_t = self.x.shape[0]
        start = max(1, prefix_len)  # a prefix of L labels + c cannot end before frame L
        xc = self.xt[rows[:, None], cand].transpose(2, 0, 1)  # [T, N, M] (a view)
        xb = self.x[:, rows, self.blank][:, :, None]  # [T, N, 1]
        r_sum = logaddexp(state.r[:, :, 0], state.r[:, :, 1])  # [T, N]
        phi = np.repeat(r_sum[:, :, None], m, axis=2)  # [T, N, M]
        same = cand == state.last[:, None]
        phi[:, same] = state.r[:, :, 1][:, np.nonzero(same)[0]]
        # r[t] = (r_n, r_b)[t]; frame t: r_n = lae(r_n[t-1], phi[t-1]) + x_c[t], r_b = lae(r_n[t-1], r_b[t-1]) + x_b[t]
        r = np.full((big_t, 2, n, m), NEG_INF, np.float32)
        if prefix_len == 0:
            r[0, 0] = xc[0]
        xct = np.ascontiguousarray(xc[start:t_max])  # the frames the recursion and psi use
        if t_max > start:
            # per frame, the second operand (phi[t-1], r_b[t-1]), stacked
            pair = np.empty((t_max - start, 2, n, m), np.float32)
            pair[:, 0] = phi[start - 1 : t_max - 1]
            buf = np.empty((2, n, m), np.float32)
            for i, t in enumerate(range(start, t_max)):
                pair[i, 1] = r[t - 1, 1]
                logaddexp(r[t - 1, 0], pair[i], out=buf)
                np.add(buf[0], xct[i], out=r[t, 0])
                np.add(buf[1], xb[t], out=r[t, 1])
        # psi(prefix + c) = lae over frames t of phi[t-1] + x_c[t] (and x_c[0] for the empty prefix)
        valid = self.valid[start:t_max, rows][:, :, None]
        terms = np.where(valid, phi[start - 1 : t_max - 1] + xct, NEG_INF)
        log_psi = logsumexp(np.concatenate([r[:1, 0], terms]) if prefix_len == 0 else terms, axis=0)
        # <eos>: the whole prefix, ending at the utterance's last frame
        last = np.maximum(self.lens[rows] - 1, 0)
        full = r_sum[last, np.arange(n)]
        log_psi = np.where(cand == self.eos, full[:, None], log_psi)
        return log_psi - state.psi[:, None], (r.transpose(0, 2, 3, 1), log_psi)

    @staticmethod
    def select(new: tuple[np.ndarray, np.ndarray], cand: np.ndarray, src: np.ndarray, col: np.ndarray) -> CTCState:
        r, psi = new
        return CTCState(np.ascontiguousarray(r[:, src, col]), psi[src, col], cand[src, col].astype(np.int64))
