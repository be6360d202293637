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
        """cand [N, M] token ids -> (scores [N, M], new forward variables [T, N, M, 2] and psi [N, M])."""
        n, m = cand.shape
        t_max = int(self.lens[rows].max()) if n else 0
        big_t = self.x.shape[0]
        xc = self.x[:, rows[:, None], cand]  # [T, N, M]
        xb = self.x[:, rows, self.blank][:, :, None]  # [T, N, 1]
        valid = self.valid[:, rows][:, :, None]  # [T, N, 1]
        r_sum = np.logaddexp(state.r[:, :, 0], state.r[:, :, 1])  # [T, N]
        phi = np.repeat(r_sum[:, :, None], m, axis=2)  # [T, N, M]
        same = cand == state.last[:, None]
        phi[:, same] = state.r[:, :, 1][:, np.nonzero(same)[0]]
        rn = np.full((big_t, n, m), NEG_INF, np.float32)
        rb = np.full((big_t, n, m), NEG_INF, np.float32)
        if prefix_len == 0:
            rn[0] = xc[0]
        log_psi = rn[0].copy()
        start = max(1, prefix_len)
        for t in range(start, t_max):
            rn[t] = np.logaddexp(rn[t - 1], phi[t - 1]) + xc[t]
            rb[t] = np.logaddexp(rn[t - 1], rb[t - 1]) + xb[t]
            log_psi = np.logaddexp(log_psi, np.where(valid[t], phi[t - 1] + xc[t], NEG_INF))
        # <eos>: the whole prefix, ending at the utterance's last frame
        last = np.maximum(self.lens[rows] - 1, 0)
        full = r_sum[last, np.arange(n)]
        log_psi = np.where(cand == self.eos, full[:, None], log_psi)
        return log_psi - state.psi[:, None], (np.stack([rn, rb], axis=-1), log_psi)

    @staticmethod
    def select(new: tuple[np.ndarray, np.ndarray], cand: np.ndarray, src: np.ndarray, col: np.ndarray) -> CTCState:
        r, psi = new
        return CTCState(np.ascontiguousarray(r[:, src, col]), psi[src, col], cand[src, col].astype(np.int64))
