"""Batching, losses, schedule and checkpoints of the trainer."""

from __future__ import annotations

import math

import pytest
import torch

from kdasr.errors import ModelError
from kdasr.training.batching import bucket_batches
from kdasr.training.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from kdasr.training.losses import label_smoothed_ce
from kdasr.training.trainer import noam_lr


def test_bucket_batches_respect_budget_and_cover_everything():
    lengths = [int(x) for x in torch.randint(50, 900, (500,), generator=torch.Generator().manual_seed(0))]
    batches = bucket_batches(lengths, max_frames=4000, seed=3, epoch=1)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 4000
    assert batches == bucket_batches(lengths, 4000, seed=3, epoch=1)  # deterministic
    assert batches != bucket_batches(lengths, 4000, seed=3, epoch=2)  # reshuffled per epoch


def test_label_smoothed_ce_matches_hand_computation():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]])
    targets = torch.tensor([[0, 2]])  # second position is padding (pad id 2)
    eps = 0.1
    logp = torch.log_softmax(logits[0, 0], -1)
    expected = (1 - eps) * -logp[0] + eps * -logp.mean()
    got = label_smoothed_ce(logits, targets, pad_id=2, smoothing=eps)
    assert math.isclose(float(got), float(expected), rel_tol=1e-6)


def test_noam_schedule_peaks_at_warmup():
    assert noam_lr(50, 1e-3, 100) == pytest.approx(5e-4)
    assert noam_lr(100, 1e-3, 100) == pytest.approx(1e-3)
    assert noam_lr(400, 1e-3, 100) == pytest.approx(5e-4)


def _payload(value: float) -> dict:
    return {"model_config": {}, "tokenizer_model": b"", "model": {"w": torch.full((2,), value), "n": torch.tensor(3)}}


def test_checkpoint_roundtrip_and_average(tmp_path):
    save_checkpoint(tmp_path / "a.pt", _payload(1.0))
    save_checkpoint(tmp_path / "b.pt", _payload(3.0))
    assert not list(tmp_path.glob("*.tmp"))
    assert torch.equal(load_checkpoint(tmp_path / "a.pt")["model"]["w"], torch.ones(2))
    avg = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    assert torch.equal(avg["model"]["w"], torch.full((2,), 2.0))
    assert int(avg["model"]["n"]) == 3


def test_bad_checkpoint_is_a_model_error(tmp_path):
    (tmp_path / "x.pt").write_text("not a checkpoint")
    with pytest.raises(ModelError, match="x.pt"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_train_says_why_it_stopped(tiny_corpus, tmp_path):
    from conftest import run_kdasr

    common = ["train", "--train", str(tiny_corpus / "train.jsonl"), "--dev", str(tiny_corpus / "dev.jsonl"),
              "--tokenizer", str(tiny_corpus / "tokenizer.model"), "--config", "tiny", "--threads", "1"]
    steps = run_kdasr(*common, "--out", str(tmp_path / "a"), "--max-steps", "2").stdout
    assert "stopped at step 2" in steps and "--max-steps 2" in steps
    epochs = run_kdasr(*common, "--out", str(tmp_path / "b"), "--epochs", "1").stdout
    assert "all 1 epochs of the config are done" in epochs
    assert "test-sized config" not in epochs  # 12 utterances: no warning about the toy's size
