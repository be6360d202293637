"""Frontend and encoder facts that export and batching rely on."""

from __future__ import annotations

import numpy as np
import torch

from kdasr.models.config import ModelConfig
from kdasr.models.encoder import subsampled_lengths
from kdasr.models.frontend import LogMelFrontend, mel_filterbank
from kdasr.models.student import build_model

TINY = ModelConfig(
    vocab_size=40,
    d_model=32,
    encoder_layers=2,
    attention_heads=2,
    subsampling_channels=8,
    decoder_hidden=32,
    embed_dim=16,
    attention_dim=16,
    dropout=0.0,
)


def test_conv_dft_frontend_matches_numpy_rfft():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(16000).astype(np.float32) * 0.1
    fe = LogMelFrontend(16000, 400, 160, 80)
    # un-normalised log-mel from torch, by undoing nothing: recompute the same pipeline in numpy
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([wave[i * 160 : i * 160 + 400] for i in range(1 + (16000 - 400) // 160)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    ref = np.log(power @ mel_filterbank(16000, 400, 80) + 1e-6)
    ref = (ref - ref.mean(0)) / np.sqrt(ref.var(0) + 1e-5)
    got, lens = fe(torch.from_numpy(wave)[None], torch.tensor([16000]))
    assert int(lens[0]) == frames.shape[0] == got.shape[1]
    np.testing.assert_allclose(got[0].numpy(), ref, atol=2e-3)


def test_mel_filters_cover_the_band():
    fb = mel_filterbank(16000, 400, 80)
    assert fb.shape == (201, 80)
    assert (fb.sum(0) > 0).all()  # no empty filter
    assert np.argmax(fb[:, 0]) < np.argmax(fb[:, -1])


def test_subsampled_lengths_match_conv_output():
    model = build_model(TINY).eval()
    for t in (16, 17, 50, 101):
        feats = torch.randn(1, t, 80)
        out, lens = model.encoder(feats, torch.tensor([t]))
        assert out.shape[1] == int(lens[0]) == int(subsampled_lengths(torch.tensor([t]), 2)[0])


def assert_batch_invariant(cfg: ModelConfig) -> int:
    """A 0.5 s input encodes the same alone and padded beside a 1.25 s one; returns its frame count.
    (Also test_blstm's check of the BLSTM encoder.)"""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    short, long = torch.randn(1, 8000) * 0.1, torch.randn(1, 20000) * 0.1
    batch = torch.zeros(2, 20000)
    batch[0, :8000], batch[1] = short[0], long[0]
    with torch.no_grad():
        alone, alone_lens = model.encode_waveform(short, torch.tensor([8000]))
        both, both_lens = model.encode_waveform(batch, torch.tensor([8000, 20000]))
    n = int(alone_lens[0])
    assert int(both_lens[0]) == n
    np.testing.assert_allclose(both[0, :n].numpy(), alone[0].numpy(), atol=1e-5)
    return n


def test_encoder_output_does_not_depend_on_batch_padding():
    assert_batch_invariant(TINY)


def test_exported_lstm_step_computes_the_training_step():
    """The LSTM decoder's export wrapper rearranges the step for onnxruntime (the query inside the
    location product); on shapes unlike its export dummies it gives the training step's outputs,
    and it reads the live weights (a changed weight changes both alike)."""
    from kdasr.export.wrappers import DecoderStepGraph

    torch.manual_seed(0)
    model = build_model(TINY).eval()
    graph = DecoderStepGraph(model).eval()
    with torch.no_grad():
        for case in [(1, 17, 1), (3, 40, 4), (2, 9, 2)]:
            inputs = graph.dummy_inputs(*case)
            for got, ref in zip(graph(*inputs), graph.reference(*inputs)):
                assert got.shape == ref.shape
                torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
        inputs = graph.dummy_inputs(2, 30, 3)
        before = graph(*inputs)[4]  # the attention weights, which the location term moves
        model.decoder.location.weight.mul_(20.0)
        after = graph(*inputs)[4]
        assert not torch.allclose(before, after, atol=1e-4)
        torch.testing.assert_close(after, graph.reference(*inputs)[4], rtol=0, atol=1e-5)


def test_teacher_forced_decoder_equals_its_steps():
    """forward() applies the output layer once over all positions (speed); it must give what step()
    gives position by position, which is what the exported decoder and every search run."""
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    dec = model.decoder
    memory, mask = torch.randn(3, 11, TINY.d_model), torch.ones(3, 11, dtype=torch.bool)
    mask[1, 7:] = False
    tokens = torch.randint(0, TINY.vocab_size, (3, 5))
    with torch.no_grad():
        whole = dec(memory, mask, tokens)
        keys, state, steps = dec.memory_keys(memory), dec.initial_state(memory, mask), []
        for u in range(tokens.shape[1]):
            logits, state = dec.step(tokens[:, u], state, memory, keys, mask)
            steps.append(logits)
    assert whole.shape == (3, 5, TINY.vocab_size)
    torch.testing.assert_close(whole, torch.stack(steps, dim=1), rtol=0, atol=1e-5)
