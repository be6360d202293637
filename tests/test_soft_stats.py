"""The smoothing control's numbers (issue 28 item 2): the entropy of the soft target the trainer
builds, and the label smoothing ε whose smoothed one-hot target is as flat. The targets are checked
against kdasr/training/losses.py itself (the loss of a student that predicts a target exactly is
that target's entropy), the command against a folder written by the soft-label writer."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdasr.errors import KdasrError
from kdasr.teachers.soft_labels import topk_soft
from kdasr.teachers.soft_stats import (
    entropy_matched_smoothing,
    smoothed_onehot_entropy,
    soft_stats,
    soft_target,
    soft_target_entropy,
)
from kdasr.teachers.storage import SoftLabelMeta, load_soft_labels, prepare_dir, shard_path, write_shard
from kdasr.training.losses import kd_loss, smoothed_token_ce

ROOT = Path(__file__).resolve().parents[1]
BLOCK_TORCH = ("import sys\nclass _B:\n    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'torch':\n            raise ImportError('torch blocked')\n"
               "sys.meta_path.insert(0, _B())\n")


@pytest.mark.parametrize("vocab", [2, 60, 256, 1000])
def test_the_matched_smoothing_round_trips(vocab):
    for target in np.linspace(0.0, math.log(vocab), 25):
        eps = entropy_matched_smoothing(float(target), vocab)
        assert 0.0 <= eps <= 1.0
        assert abs(smoothed_onehot_entropy(eps, vocab) - target) < 1e-6
    assert entropy_matched_smoothing(0.0, vocab) < 1e-9 and entropy_matched_smoothing(math.log(vocab), vocab) > 0.999


def test_more_entropy_needs_more_smoothing():
    targets = np.linspace(0.05, math.log(256) - 0.05, 40)
    eps = [entropy_matched_smoothing(float(t), 256) for t in targets]
    assert all(a < b for a, b in zip(eps, eps[1:]))
    h = [smoothed_onehot_entropy(e, 256) for e in np.linspace(0, 1, 50)]
    assert all(a < b for a, b in zip(h, h[1:]))


def test_an_impossible_entropy_is_refused():
    with pytest.raises(KdasrError, match=r"entropy 5\.6 nats: no label smoothing reaches it over 256 units "
                                         r"\(possible: 0 to ln 256 = 5\.54518\)"):
        entropy_matched_smoothing(5.6, 256)
    with pytest.raises(KdasrError, match="no label smoothing reaches it"):
        entropy_matched_smoothing(-0.1, 256)
    with pytest.raises(KdasrError, match="no label smoothing reaches it"):
        entropy_matched_smoothing(float("nan"), 256)
    with pytest.raises(KdasrError, match="needs at least 2 units"):
        entropy_matched_smoothing(0.0, 1)


def test_the_hard_target_is_the_one_smoothed_token_ce_uses():
    """The loss of a student whose log-probs are the target's own is the target's entropy: so the
    closed form here is the entropy of (1 − ε)·onehot + ε·uniform with the true unit in the uniform."""
    vocab, eps = 37, 0.3
    target = np.full(vocab, eps / vocab)
    target[5] += 1 - eps
    logp = torch.log(torch.tensor(target, dtype=torch.float64))[None, None]
    ce, _ = smoothed_token_ce(logp, torch.tensor([[5]]), eps)
    assert abs(float(ce) - smoothed_onehot_entropy(eps, vocab)) < 1e-9


def test_the_soft_target_is_the_one_kd_loss_uses():
    """For any student, kd_loss's soft term (λ = 1) is −Σ q·log p with q = soft_target; and the closed-form
    entropy per row is the dense q's. With the trainer's float16 rows, not renormalised."""
    rng = np.random.default_rng(0)
    vocab, k, n, sigma = 50, 8, 6, 0.15
    ids, probs = topk_soft(torch.tensor(rng.standard_normal((n, vocab)) * 3), k, 2.0)
    probs = probs.astype(np.float16).astype(np.float32)  # as stored and read back
    logits = torch.tensor(rng.standard_normal((1, n, vocab)), dtype=torch.float32)
    parts = kd_loss(logits, torch.full((1, n), 7), torch.tensor(ids)[None], torch.tensor(probs)[None],
                    torch.ones(1, n, dtype=torch.bool), pad_id=0, smoothing=0.1, lam=1.0, soft_smoothing=sigma)
    q = soft_target(ids, probs, sigma, vocab)
    logp = torch.log_softmax(logits.double(), -1)[0].numpy()
    assert abs(float(parts["soft"]) - float(-(q * logp).sum(1).mean())) < 1e-5
    dense = -(q * np.log(q)).sum(1)
    assert np.allclose(soft_target_entropy(probs, sigma, vocab), dense, atol=1e-12)


def _write_folder(folder, vocab=60, k=8, temperature=3.0, n_utts=7, seed=0):
    """A soft-label folder made by the writer `kdasr teacher soft-labels` uses, from random teacher logits."""
    rng = np.random.default_rng(seed)
    meta = SoftLabelMeta("bert", "utterance", k, temperature, 0, vocab, "0" * 40, "teacher")
    prepare_dir(folder, meta)
    rows = {}
    for i in range(n_utts):
        logits = torch.tensor(rng.standard_normal((int(rng.integers(2, 9)), vocab)) * 4)
        rows[f"u{i}"] = topk_soft(logits, k, temperature)
    uids = list(rows)
    write_shard(shard_path(folder, 0), {u: rows[u] for u in uids[:4]}, vocab)
    write_shard(shard_path(folder, 1), {u: rows[u] for u in uids[4:]}, vocab)
    return rows


def test_soft_stats_over_a_written_folder(tmp_path):
    rows = _write_folder(tmp_path / "soft")
    stats = soft_stats(tmp_path / "soft", kd_smoothing=0.1)
    back = load_soft_labels(tmp_path / "soft").rows  # what the trainer reads
    ids = np.concatenate([back[u][0] for u in rows])
    probs = np.concatenate([back[u][1] for u in rows])
    q = soft_target(ids, probs, 0.1, 60)
    assert (stats.utterances, stats.tokens, stats.top_k, stats.temperature) == (7, len(ids), 8, 3.0)
    assert stats.target_entropy == pytest.approx(float(-(q * np.log(q)).sum(1).mean()), abs=1e-9)
    assert stats.max_entropy == pytest.approx(math.log(60)) and stats.teacher_max_entropy == pytest.approx(math.log(8))
    assert stats.top1 == pytest.approx(float(probs.max(1).astype(np.float64).mean()), abs=1e-9)
    assert stats.target_top1 == pytest.approx(float(q.max(1).mean()), abs=1e-9)
    assert stats.teacher_entropy < stats.teacher_max_entropy and stats.target_entropy > stats.teacher_entropy
    assert abs(smoothed_onehot_entropy(stats.matched_label_smoothing, 60) - stats.target_entropy) < 1e-6
    flatter = soft_stats(tmp_path / "soft", vocab_size=256, kd_smoothing=0.3)
    assert flatter.target_entropy > stats.target_entropy and flatter.vocab_size == 256
    with pytest.raises(KdasrError, match="unit id .* outside a vocabulary of 20"):
        soft_stats(tmp_path / "soft", vocab_size=20)


@pytest.mark.slow
def test_the_command_writes_the_figures_and_refuses_bad_input_in_one_line(tmp_path):
    """Through the real CLI, where `import torch` fails (the command is torch-free)."""
    _write_folder(tmp_path / "soft", temperature=2.0)
    out = tmp_path / "stats" / "soft.json"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    cmd = [sys.executable, "-m", "kdasr", "teacher", "soft-stats"]
    proc = subprocess.run([*cmd, str(tmp_path / "soft"), "--vocab-size", "60", "--kd-smoothing", "0.2",
                           "--json", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    want = soft_stats(tmp_path / "soft", 60, 0.2)
    assert figures == want.to_dict() and figures["temperature"] == 2.0 and figures["kd_smoothing"] == 0.2
    assert f"ε = {want.matched_label_smoothing:.4f}" in proc.stdout and "K = 8, T = 2" in proc.stdout
    for args, message in [
        ([str(tmp_path / "nothing")], f"error: {tmp_path / 'nothing'}: no soft labels here (meta.json missing"),
        ([str(tmp_path / "soft"), "--kd-smoothing", "1"], "error: --kd-smoothing 1.0: must be at least 0 and below 1"),
        ([str(tmp_path / "soft"), "--vocab-size", "8"], "error: --vocab-size 8: must exceed the soft labels' K = 8"),
    ]:
        proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env)
        assert proc.returncode == 1 and proc.stderr.startswith(message), proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
