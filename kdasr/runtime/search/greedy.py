"""Batched greedy decoding over the ONNX graphs, in numpy.

All live utterances go through one decoder call per step; an utterance that emits <eos> or
reaches its length limit leaves the batch, so the work shrinks as hypotheses finish."""

from __future__ import annotations

import numpy as np

from ...ctc import ctc_best_paths
from ...spec.decode_options import DecodeOptions
from ..onnx_model import OnnxStudent
from .scorers import DecoderScorer


def ctc_greedy(logprobs: np.ndarray, lens: np.ndarray, blank: int) -> list[list[int]]:
    """CTC best path of each utterance (logprobs [B, T, V], its first lens[b] frames)."""
    return ctc_best_paths(logprobs.argmax(-1), lens, blank)


def length_limits(lens: np.ndarray, ctc_logprobs: np.ndarray | None, blank: int, opts: DecodeOptions) -> np.ndarray:
    """Most output tokens per utterance: a ratio of the encoder frames, and the CTC head's greedy
    length times a ratio plus slack (stops small attention decoders that loop). A model without a
    CTC head (whisper) gets the ratio alone."""
    lens = lens.astype(np.int64)
    if ctc_logprobs is None:
        return np.ceil(lens * opts.max_len_ratio).astype(int)
    ctc_lens = np.array([len(x) for x in ctc_greedy(ctc_logprobs, lens, blank)])
    return np.minimum(
        np.ceil(lens * opts.max_len_ratio), ctc_lens * opts.ctc_length_ratio + opts.ctc_length_slack
    ).astype(int)


def attention_greedy(model: OnnxStudent, enc: dict[str, np.ndarray], opts: DecodeOptions) -> list[list[int]]:
    ids = model.spec.special_ids
    io = model.spec.encoder
    limits = length_limits(enc[io.lens], enc.get(io.ctc_logprobs), ids.blank, opts)
    n = len(limits)
    scorer = DecoderScorer(model, enc)
    live = np.arange(n)  # rows of the original batch still decoding
    state = scorer.init_state(live)
    tokens = np.full(n, ids.bos, dtype=np.int64)
    outputs: list[list[int]] = [[] for _ in range(n)]
    step = 0
    while len(live) and step <= limits.max():
        logprobs, state = scorer.score(tokens, state, live)
        best = logprobs.argmax(-1)
        keep = []
        for j, row in enumerate(live):
            tok = int(best[j])
            if tok == ids.eos or len(outputs[row]) >= limits[row]:
                continue
            outputs[row].append(tok)
            keep.append(j)
        keep = np.array(keep, dtype=np.int64)
        if len(keep) < len(live):
            state = scorer.select_state(state, keep)
            live = live[keep]
        tokens = best[keep].astype(np.int64)
        step += 1
    return outputs
