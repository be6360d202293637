"""Knowledge-distillation pieces: the KD loss, context windows, soft-label storage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdasr.data.manifest import Utterance
from kdasr.errors import KdasrError
from kdasr.teachers.context import DocumentIndex, centred_window, utterance_windows
from kdasr.teachers.storage import SoftLabelMeta, load_soft_labels, prepare_dir, write_shard
from kdasr.training.losses import kd_loss, label_smoothed_ce

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_kd_loss_matches_hand_computation():
    logits = torch.tensor([[[1.0, 0.0, -1.0, 2.0], [0.3, 0.1, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    targets = torch.tensor([[3, 1, 0]])  # last position is padding (pad 0)
    soft_ids = torch.tensor([[[3, 0], [2, 1], [0, 0]]])
    soft_probs = torch.tensor([[[0.75, 0.25], [0.6, 0.4], [0.5, 0.5]]])
    soft_mask = torch.tensor([[True, False, False]])  # second position has no teacher (<eos>-like)
    lam, eps, sig = 0.3, 0.1, 0.1
    got = kd_loss(logits, targets, soft_ids, soft_probs, soft_mask, 0, eps, lam, sig)
    lp0 = torch.log_softmax(logits[0, 0], -1).tolist()
    lp1 = torch.log_softmax(logits[0, 1], -1).tolist()
    hard0 = (1 - eps) * -lp0[3] + eps * -sum(lp0) / 4
    q0 = [0.9 * 0.25 + 0.1 / 4, 0.1 / 4, 0.1 / 4, 0.9 * 0.75 + 0.1 / 4]  # smoothed soft target
    soft0 = -sum(q * lp for q, lp in zip(q0, lp0))
    hard1 = (1 - eps) * -lp1[1] + eps * -sum(lp1) / 4
    expected = ((lam * soft0 + (1 - lam) * hard0) + hard1) / 2
    assert math.isclose(float(got["loss"]), expected, rel_tol=1e-6)


def test_kd_loss_with_lambda_zero_is_exactly_the_baseline():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 20, generator=g)
    targets = torch.randint(1, 20, (3, 5), generator=g)
    targets[1, 3:] = 0
    ids = torch.randint(0, 20, (3, 5, 8), generator=g)
    probs = torch.softmax(torch.randn(3, 5, 8, generator=g), -1)
    got = kd_loss(logits, targets, ids, probs, torch.ones(3, 5, dtype=torch.bool), 0, 0.1, 0.0)["loss"]
    assert torch.equal(got, label_smoothed_ce(logits, targets, 0, 0.1))


def test_centred_window_is_centred_and_clipped():
    left, own, right = list(range(100, 120)), [1, 2, 3, 4], list(range(200, 220))
    w = centred_window(left, own, right, 12)
    assert w.tokens == (116, 117, 118, 119, 1, 2, 3, 4, 200, 201, 202, 203)
    assert list(w.masked) == [4, 5, 6, 7]
    # document start: no left context, the room goes right
    w = centred_window([], own, right, 12)
    assert w.tokens == (1, 2, 3, 4, *range(200, 208)) and w.start == 0
    # document end: the room goes left
    w = centred_window(left, own, [9], 12)
    assert w.tokens == (*range(113, 120), 1, 2, 3, 4, 9) and w.start == 7
    # short document: everything fits
    w = centred_window([7], own, [8], 256)
    assert w.tokens == (7, 1, 2, 3, 4, 8) and w.start == 1


def test_document_windows_use_neighbours_of_the_same_document_only():
    def utt(i, doc, pos, text):
        return Utterance(id=f"u{i}", audio="x.wav", text=text, duration=1.0, doc=doc, pos=pos)

    utts = [
        utt(0, "a", 0, "w0"),
        utt(1, "a", 1, "w1"),
        utt(2, "a", 1, "w1"),
        utt(3, "a", 2, "w2"),
        utt(4, "b", 0, "w9"),
    ]
    encode = {"w0": [10, 11], "w1": [20, 21, 22], "w2": [30], "w9": [90, 91]}.__getitem__
    docs = DocumentIndex(utts, encode)
    (w,) = utterance_windows(utts[1], encode("w1"), "context", 256, docs)
    assert w.tokens == (10, 11, 20, 21, 22, 30) and list(w.masked) == [2, 3, 4]  # voice duplicate taken once
    (w,) = utterance_windows(utts[4], encode("w9"), "context", 256, docs)
    assert w.tokens == (90, 91) and w.start == 0
    (w,) = utterance_windows(utts[1], encode("w1"), "utterance", 256, docs)
    assert w.tokens == (20, 21, 22)
    long = utterance_windows(utts[1], list(range(5, 15)), "context", 4, docs)
    assert [len(x.tokens) for x in long] == [4, 4, 2] and all(x.start == 0 for x in long)


def _meta(**kw) -> SoftLabelMeta:
    return SoftLabelMeta(
        **{
            "teacher": "bert",
            "mode": "utterance",
            "top_k": 2,
            "temperature": 3.0,
            "window": 0,
            "vocab_size": 50,
            "tokenizer_sha1": "x",
            **kw,
        }
    )


def test_storage_roundtrip_and_settings_guard(tmp_path):
    prepare_dir(tmp_path, _meta())
    rows = {
        "a": (np.array([[5, 6], [7, 8]]), np.array([[0.6, 0.4], [0.5, 0.5]])),
        "b": (np.array([[9, 5]]), np.array([[1.0, 0.0]])),
    }
    write_shard(tmp_path / "shard-00000.npz", rows, 50)
    sl = load_soft_labels(tmp_path)
    assert set(sl.rows) == {"a", "b"} and sl.rows["a"][0].tolist() == [[5, 6], [7, 8]]
    assert sl.rows["a"][1].dtype == np.float32 and sl.bytes_on_disk > 0
    with pytest.raises(KdasrError, match="other settings"):
        prepare_dir(tmp_path, _meta(top_k=4))
