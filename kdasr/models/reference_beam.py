"""Torch reference beam search, one utterance at a time, written for clarity rather than speed.

The runtime's batched numpy/ORT search (kdasr.runtime.search.beam) must reproduce its n-best: same
scorers (attention decoder, CTC prefix score, LM via a `step` callable, length bonus) combined
by the same weights dict, same candidate rule (fairseq's 2 x beam walk), same length limits,
same tie-breaking (stable sort by candidate index)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..spec.decode_options import DecodeOptions
from .encoder import padding_mask
from .reference_decode import length_limits
from .student import Seq2SeqStudent

LMStep = Callable[[torch.Tensor, object], tuple[torch.Tensor, object]]  # (tokens [N], state) -> (logp [N, V], state)


def ctc_prefix_scores(x: torch.Tensor, prefix: list[int], cands: list[int], blank: int, eos: int) -> list[float]:
    """log psi(prefix + c) for each candidate c (for eos: the full CTC log-prob of the prefix),
    by the textbook forward recursion over frames x [T, V] (log-probs), in float64."""
    x = x.double()
    t_len = x.shape[0]
    neg = torch.tensor(float("-inf"), dtype=torch.float64)

    def forward(labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_n, r_b) [T] of a label sequence: paths ending in its last label / in blank."""
        rn, rb = torch.full((t_len,), neg), torch.full((t_len,), neg)
        if not labels:
            return rn, torch.cumsum(x[:, blank], 0)
        prev_n, prev_b = forward(labels[:-1])
        c, last = labels[-1], (labels[-2] if len(labels) > 1 else None)
        if len(labels) == 1:
            rn[0] = x[0, c]
        for t in range(1, t_len):
            phi = prev_b[t - 1] if c == last else torch.logaddexp(prev_n[t - 1], prev_b[t - 1])
            rn[t] = torch.logaddexp(rn[t - 1], phi) + x[t, c]
            rb[t] = torch.logaddexp(rn[t - 1], rb[t - 1]) + x[t, blank]
        return rn, rb

    pn, pb = forward(prefix)
    out = []
    for c in cands:
        if c == eos:
            out.append(float(torch.logaddexp(pn[-1], pb[-1])))
            continue
        psi = x[0, c] if not prefix else neg
        for t in range(1, t_len):
            phi = pb[t - 1] if prefix and c == prefix[-1] else torch.logaddexp(pn[t - 1], pb[t - 1])
            psi = torch.logaddexp(psi, phi + x[t, c])
        out.append(float(psi))
    return out


@torch.no_grad()
def torch_beam_search(
    model: Seq2SeqStudent,
    wave: torch.Tensor,
    bos: int,
    eos: int,
    blank: int,
    opts: DecodeOptions,
    limit: int | None = None,
    lm: tuple[LMStep, object] | None = None,
) -> list[tuple[list[int], float]]:
    """One utterance (wave [S]) -> n-best [(tokens, ranking score)], best first. The search is the
    one `opts` describes for the runtime (beam, opts.weights(), ctc_prebeam, length_penalty,
    nbest); limit: most tokens (default: reference_decode.length_limits, as the runtime's)."""
    beam, weights, ctc_prebeam = opts.beam, opts.weights(), opts.ctc_prebeam
    length_penalty, nbest = opts.length_penalty, opts.nbest
    model.eval()
    memory, lens = model.encode_waveform(wave[None], torch.tensor([wave.shape[0]]))
    if limit is None:
        limit = length_limits(model, memory, lens, blank, opts)[0]
    mask = padding_mask(lens, memory.shape[1])
    keys = model.decoder.memory_keys(memory)
    ctc_x = torch.log_softmax(model.ctc_head(memory)[0, : int(lens[0])], -1)
    dec_state = model.decoder.initial_state(memory, mask)
    lm_step, lm_state = lm if lm else (None, None)
    # hypothesis = (tokens, score, decoder state, lm state); start with one live hypothesis
    hyps = [((), 0.0, dec_state, lm_state)]
    finished: list[tuple[tuple[int, ...], float]] = []
    for step in range(limit + 1):
        cands = []  # (score, index in the beam x candidates order, prefix, token, states)
        for i, (prefix, score, st, lst) in enumerate(hyps):
            last = torch.tensor([prefix[-1] if prefix else bos])
            logits, new_st = model.decoder.step(last, st, memory, keys, mask)
            total = weights.get("decoder", 0.0) * torch.log_softmax(logits, -1)[0].double()
            new_lst = None
            if lm_step is not None and "lm" in weights:
                lm_logp, new_lst = lm_step(last, lst)
                total = total + weights["lm"] * lm_logp[0].double()
            if "ctc" in weights:
                masked = total.clone()
                masked[eos] = float("-inf")
                m = min(total.shape[0] - 1, math.ceil(ctc_prebeam * beam))
                ids = [eos] + torch.sort(masked, descending=True, stable=True).indices[:m].tolist()
                psi = ctc_prefix_scores(ctc_x, list(prefix), ids, blank, eos)
                base = _prefix_psi(ctc_x, list(prefix), blank)
                scored = [(c, float(total[c]) + weights["ctc"] * (p - base)) for c, p in zip(ids, psi)]
            else:
                scored = [(c, float(total[c])) for c in range(total.shape[0])]
            for j, (c, s) in enumerate(scored):
                s += weights.get("length_bonus", 0.0)
                if step >= limit and c != eos:
                    s = float("-inf")
                cands.append((score + s, i * len(scored) + j, prefix, c, new_st, new_lst))
        # pad the beam to `beam` rows of -inf so the candidate indices match the batched layout
        width = len(cands) // len(hyps)
        pad = range((beam - len(hyps)) * width)
        cands += [(float("-inf"), len(hyps) * width + q, (), eos, None, None) for q in pad]
        order = sorted(cands, key=lambda x: (-x[0], x[1]))[: 2 * beam]
        live = []
        for rank, (s, _, prefix, c, st, lst) in enumerate(order):
            if s == float("-inf"):
                break
            if c == eos:
                if rank < beam:
                    finished.append((prefix, s))
            elif len(live) < beam:
                live.append((prefix + (c,), s, st, lst))
        if len(finished) >= beam or not live:
            break
        hyps = live
    ranked = sorted(
        ((list(t), s / (len(t) + 1) ** length_penalty if length_penalty else s) for t, s in finished),
        key=lambda h: -h[1],
    )
    return ranked[:nbest]


def _prefix_psi(x: torch.Tensor, prefix: list[int], blank: int) -> float:
    """psi(prefix): the prefix score of the prefix itself (0 for the empty prefix)."""
    if not prefix:
        return 0.0
    return ctc_prefix_scores(x, prefix[:-1], [prefix[-1]], blank, eos=-1)[0]
