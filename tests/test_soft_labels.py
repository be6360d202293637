"""Soft labels: the fast BERT path equals the straightforward one; shards are well formed and resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdasr.data.manifest import Utterance
from kdasr.errors import KdasrError
from kdasr.models.lm import LMConfig, TransformerLM
from kdasr.teachers.bert import BertConfigLite, BertTeacher, build_bert
from kdasr.teachers.context import Window, centred_window
from kdasr.teachers.soft_labels import (
    SPECIAL_IDS,
    SoftLabelConfig,
    fast_window_labels,
    generate_soft_labels,
    lm_labels,
    straightforward_labels,
)
from kdasr.teachers.storage import load_soft_labels
from kdasr.text import Tokenizer, train_tokenizer

SENTENCES = [
    "in the beginning god created the heavens and the earth",
    "the earth was formless and empty",
    "god said let there be light and there was light",
    "god saw the light and saw that it was good",
    "the man knew eve his wife",
    "she conceived and gave birth to cain",
    "there was evening and there was morning the first day",
    "it is a truth universally acknowledged",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    d = tmp_path_factory.mktemp("tok")
    (d / "text.txt").write_text("\n".join(SENTENCES * 5) + "\n")
    return Tokenizer(train_tokenizer([d / "text.txt"], d / "sp", vocab_size=60))


def tiny_bert(vocab: int):
    torch.manual_seed(0)
    return build_bert(BertConfigLite(layers=2, hidden=32, heads=2, ff_dim=64, window=64, dropout=0.0), vocab).eval()


def utterances() -> list[Utterance]:
    out = []
    for i, s in enumerate(SENTENCES):
        doc, pos = ("a", i) if i < 5 else ("b", i - 5)
        for voice in range(2):  # each sentence in two voices, as in the demo corpus
            out.append(Utterance(id=f"u{i}-{voice}", audio="x.wav", text=s, duration=1.0, doc=doc, pos=pos))
    return out


def test_fast_soft_labels_equal_straightforward(tok):
    model = tiny_bert(tok.vocab_size)
    enc = [tuple(tok.encode(s)) for s in SENTENCES]
    windows = [Window(t, 0, len(t)) for t in enc]
    windows += [
        centred_window(list(enc[0] + enc[1]), list(enc[2]), list(enc[3] + enc[4]), 30),
        centred_window([], list(enc[5]), list(enc[6]), 20),
    ]
    cfg = SoftLabelConfig(top_k=8, temperature=3.0, batch_tokens=97)  # odd budget: many partial batches
    fast = fast_window_labels(model, windows, cfg)
    slow = straightforward_labels(model, windows, cfg)
    for w, (fi, fp), (si, sp) in zip(windows, fast, slow):
        assert fi.shape == (w.length, 8)
        np.testing.assert_array_equal(fi, si)
        np.testing.assert_allclose(fp, sp, atol=1e-5)


def test_generated_shards_rows_sum_to_one_and_resume_after_kill(tok, tmp_path):
    teacher = BertTeacher(tiny_bert(tok.vocab_size), window=64, mask_id=tok.mask_id, path="tiny")
    utts = utterances()
    cfg = SoftLabelConfig(mode="context", top_k=8, temperature=3.0, window=24, shard_size=3)
    clean = generate_soft_labels(utts, tok, teacher, "bert", cfg, tmp_path / "clean", progress=False)
    # a run "killed" after two shards, then resumed, ends with the same labels
    first = generate_soft_labels(utts, tok, teacher, "bert", cfg, tmp_path / "resumed", progress=False,
                                 stop_after_shards=2)
    assert len(list((tmp_path / "resumed").glob("shard-*.npz"))) == 2
    again = generate_soft_labels(utts, tok, teacher, "bert", cfg, tmp_path / "resumed", progress=False)
    assert again["shards_written"] == clean["shards_written"] - 2
    # the cost of both runs is reported, not only the last one's
    assert (clean["runs"], first["runs"], again["runs"]) == (1, 1, 2)
    assert again["seconds_all_runs"] == pytest.approx(first["seconds"] + again["seconds"], abs=0.2)
    nothing = generate_soft_labels(utts, tok, teacher, "bert", cfg, tmp_path / "resumed", progress=False)
    assert nothing["shards_written"] == 0 and nothing["runs"] == 2  # a run that wrote nothing is not counted
    a, b = load_soft_labels(tmp_path / "clean"), load_soft_labels(tmp_path / "resumed")
    assert a.meta.mode == "context" and a.meta.window == 24 and set(a.rows) == {u.id for u in utts}
    assert clean["computed_tokens"] * 2 == clean["tokens"]  # each sentence computed once for two voices
    for u in utts:
        ids, probs = a.rows[u.id]
        assert ids.shape == probs.shape == (len(tok.encode(u.text)), 8)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=2e-3)  # float16 storage
        assert not np.isin(ids, SPECIAL_IDS).any()
        assert (np.diff(probs, axis=1) <= 1e-3).all()  # sorted, most likely first
        np.testing.assert_array_equal(ids, b.rows[u.id][0])
        np.testing.assert_array_equal(probs, b.rows[u.id][1])
    assert not list((tmp_path / "resumed").glob("*.tmp"))


def test_lm_soft_labels_come_from_one_causal_forward(tok, tmp_path):
    torch.manual_seed(0)
    lm = TransformerLM(
        LMConfig(vocab_size=tok.vocab_size, d_model=32, layers=1, heads=2, ff_dim=64, dropout=0.0)
    ).eval()
    seqs = [tuple(tok.encode(s)) for s in SENTENCES[:3]]
    labels = lm_labels(lm, seqs, SoftLabelConfig())
    for t, (ids, _probs) in zip(seqs, labels):
        assert ids.shape == (len(t), 8)
        with torch.no_grad():  # step by step with the cache: the same distributions
            cache, tokens = None, torch.tensor([tok.bos_id])
            for i in range(len(t)):
                logits, cache = lm.step(tokens, cache)
                logits[:, list(SPECIAL_IDS)] = float("-inf")
                assert logits[0].topk(8).indices.tolist() == ids[i].tolist()
                tokens = torch.tensor([t[i]])
    out = generate_soft_labels(utterances(), tok, lm, "lm", SoftLabelConfig(), tmp_path / "lm", progress=False)
    sl = load_soft_labels(tmp_path / "lm")
    assert sl.meta.teacher == "lm" and sl.meta.mode == "causal" and out["utterances"] == len(sl.rows)


def test_bf16_soft_labels_are_close_and_recorded(tok, tmp_path):
    """--amp bf16 (the recipe's setting on CPUs with AMX) gives nearly the fp32 labels, and says so
    in meta.json, so a resume cannot mix the two."""
    model = tiny_bert(tok.vocab_size)
    enc = [tuple(tok.encode(s)) for s in SENTENCES]
    windows = [Window(t, 0, len(t)) for t in enc]
    fp32 = fast_window_labels(model, windows, SoftLabelConfig())
    bf16 = fast_window_labels(model, windows, SoftLabelConfig(amp="bf16"))
    top1 = np.concatenate([a[0][:, 0] == b[0][:, 0] for a, b in zip(fp32, bf16)])
    overlap = np.concatenate([[len(set(x) & set(y)) for x, y in zip(a[0], b[0])] for a, b in zip(fp32, bf16)])
    assert top1.mean() >= 0.9 and overlap.mean() >= 7, (top1.mean(), overlap.mean())
    assert max(abs(a[1][:, 0] - b[1][:, 0]).max() for a, b in zip(fp32, bf16)) < 0.02
    teacher = BertTeacher(model, window=64, mask_id=tok.mask_id, path="tiny")
    utts = utterances()
    generate_soft_labels(utts, tok, teacher, "bert", SoftLabelConfig(amp="bf16"), tmp_path / "sl", progress=False)
    assert load_soft_labels(tmp_path / "sl").meta.amp == "bf16"
    with pytest.raises(KdasrError, match="amp"):
        generate_soft_labels(utts, tok, teacher, "bert", SoftLabelConfig(), tmp_path / "sl", progress=False)


def test_teacher_bench_compares_methods_and_bf16(tok):
    from kdasr.teachers.bench import bench_soft_labels

    teacher = BertTeacher(tiny_bert(tok.vocab_size), window=64, mask_id=tok.mask_id, path="tiny")
    r = bench_soft_labels(teacher, tok, utterances(), "context", 24, repeats=1)
    assert r.mode == "context" and r.utterances == len(utterances())
    assert r.unique_windows * 2 == r.windows and r.same_ids == 1.0 and r.max_prob_diff < 1e-5
    assert min(r.slow_tps, r.fast_tps, r.dedup_tps, r.bf16_tps) > 0
    assert r.bf16_same_top1 >= 0.9 and r.bf16_max_prob_diff < 0.02
