"""The Transformer LM: causal forward and the KV-cache step agree."""

from __future__ import annotations

import pytest
import torch

from kdasr.models.lm import LMConfig, TransformerLM

CFG = LMConfig(vocab_size=30, d_model=32, layers=2, heads=4, ff_dim=64, dropout=0.0, max_len=64)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_step_with_cache_equals_forward():
    torch.manual_seed(0)
    lm = TransformerLM(CFG).eval()
    tokens = torch.randint(0, 30, (3, 9))
    with torch.no_grad():
        full = lm(tokens)
        cache, cache_list = None, None
        for u in range(tokens.shape[1]):
            logits, cache = lm.step(tokens[:, u], cache)
            torch.testing.assert_close(logits, full[:, u], atol=1e-5, rtol=1e-5)
            logits_l, cache_list = lm.step(tokens[:, u], cache_list if cache_list is not None else [])
            torch.testing.assert_close(logits_l, full[:, u], atol=1e-5, rtol=1e-5)
    assert cache.shape == (2, 2, 3, 4, 9, 8)
    assert isinstance(cache_list, list) and cache_list[0][0].shape == (3, 4, 9, 8)


def test_forward_is_causal():
    torch.manual_seed(0)
    lm = TransformerLM(CFG).eval()
    a = torch.randint(0, 30, (1, 8))
    b = a.clone()
    b[0, 5:] = (b[0, 5:] + 1) % 30
    with torch.no_grad():
        torch.testing.assert_close(lm(a)[:, :5], lm(b)[:, :5])
