"""Torch reference greedy decoding: the runtime's numpy/ORT search must reproduce it exactly."""

from __future__ import annotations

import math

import torch

from .encoder import padding_mask
from .student import Seq2SeqStudent


@torch.no_grad()
def torch_greedy(
    model: Seq2SeqStudent,
    wave: torch.Tensor,
    bos: int,
    eos: int,
    blank: int,
    max_len_ratio: float = 0.6,
    ctc_ratio: float = 1.5,
    ctc_slack: int = 4,
) -> list[int]:
    """One utterance (wave [S]) -> token ids, same limits as kdasr.runtime.DecodeOptions."""
    model.eval()
    memory, lens = model.encode_waveform(wave[None], torch.tensor([wave.shape[0]]))
    best = model.ctc_head(memory)[0].argmax(-1).tolist()
    ctc_len = sum(1 for i, t in enumerate(best) if t != blank and (i == 0 or t != best[i - 1]))
    limit = int(min(math.ceil(int(lens[0]) * max_len_ratio), ctc_len * ctc_ratio + ctc_slack))
    mask = padding_mask(lens, memory.shape[1])
    keys = model.decoder.memory_keys(memory)
    state = model.decoder.initial_state(memory, mask)
    token, out = torch.tensor([bos]), []
    while len(out) <= limit:
        logits, state = model.decoder.step(token, state, memory, keys, mask)
        token = logits.argmax(-1)
        if int(token) == eos or len(out) >= limit:
            break
        out.append(int(token))
    return out
