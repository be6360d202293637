"""The paper's BLSTM student: padding-invariant, trains through the same loss, exports through the
same encoder wrapper with parity."""

from __future__ import annotations

import pytest
import torch

from kdasr.models.blstm import reverse_within
from kdasr.models.config import ModelConfig
from kdasr.models.student import build_model

BLSTM = ModelConfig(
    vocab_size=40,
    encoder_type="blstm",
    n_mels=40,
    frame_stack=3,
    blstm_layers=2,
    blstm_hidden=16,
    d_model=24,
    decoder_hidden=32,
    embed_dim=16,
    attention_dim=16,
    location_channels=2,
    location_kernel=5,
    dropout=0.0,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reverse_within_keeps_padding_in_place():
    x = torch.arange(10.0).reshape(2, 5, 1)
    got = reverse_within(x, torch.tensor([3, 5]))[..., 0]
    assert got.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]


def test_blstm_encoder_is_batch_invariant_and_stacks_frames():
    from test_models import assert_batch_invariant

    assert assert_batch_invariant(BLSTM) == (1 + (8000 - 400) // 160) // 3
    assert BLSTM.frame_shift_s == 0.03


def test_blstm_encoder_exports_with_parity(tmp_path):
    """The encoder graph (the decoder-step graph is the Conformer student's, tested elsewhere)."""
    from kdasr.export.check import check_encoder
    from kdasr.export.onnx_export import export_graph
    from kdasr.export.wrappers import EncoderGraph

    torch.manual_seed(0)
    model = build_model(BLSTM).eval()
    export_graph(EncoderGraph(model), tmp_path / "encoder.onnx")
    check = check_encoder(model, tmp_path / "encoder.onnx")
    assert check.ok(1e-4), check
