"""`kdasr teacher quality`: count baselines checked by hand on a tiny text, soft-label shares on a
crafted store, and the command end to end (real tiny teachers, real subprocess)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from kdasr.teachers.ngram import CountModels
from kdasr.teachers.quality import soft_label_quality
from kdasr.teachers.storage import SoftLabelMeta, prepare_dir, shard_path, tokenizer_sha1, write_shard
from kdasr.text import BOS_ID, EOS_ID, Tokenizer, train_tokenizer
from tests.conftest import run_kdasr

# units 5, 6, 7 of an 8-entry vocabulary; sentences [5 6], [5 7], [6]; discount 0.5
TINY = [[5, 6], [5, 7], [6]]


def test_unigram_and_bigram_by_hand():
    m = CountModels(TINY, 8, discount=0.5)
    # counts without <bos>: 5:2 6:2 7:1 eos:3, N = 8, |C| = 4 -> add-one
    np.testing.assert_allclose(m.unigram[[5, 6, 7, EOS_ID]], np.array([3, 3, 2, 4]) / 12)
    assert m.unigram[BOS_ID] == 0
    # after <bos>: 5 twice, 6 once (total 3, 2 distinct): (c - 0.5)/3 + 0.5*2/3 * p(w)
    np.testing.assert_allclose(m.bigram[BOS_ID, [5, 6, 7, EOS_ID]], [7 / 12, 1 / 4, 1 / 18, 1 / 9])
    # bigram LM on [5 6]: p(5|bos) p(6|5) p(eos|6); p(6|5) = 0.5/2 + 0.5*2/2 * 3/12, p(eos|6) = 1.5/2 + 0.5/2 * 4/12
    s = m.score_bigram([[5, 6]])
    expected = (7 / 12) * (0.25 + 0.125) * (0.75 + 1 / 12)
    assert s.tokens == 3 and math.isclose(s.perplexity, expected ** (-1 / 3))
    # masked unigram: units only, renormalised (3/8, 3/8, 2/8); argmax 5 (lowest id of the tie)
    s = m.score_masked_unigram([[5, 6]])
    assert math.isclose(s.perplexity, 8 / 3) and s.top1 == 0.5


def test_two_sided_count_model_by_hand():
    m = CountModels(TINY, 8, discount=0.5)
    # (<bos>, w, <eos>) seen once, with w = 6: 0.5 + 0.5 * q(w), q(w) ∝ p(w|bos) p(eos|w)
    # p(eos|5) = 1/6, p(eos|6) = 10/12, p(eos|7) = 2/3 -> q ∝ (7/72, 15/72, 1/27) = (21, 45, 8)/74
    p = m.two_sided(BOS_ID, EOS_ID)
    np.testing.assert_allclose(p[[5, 6, 7]], np.array([10.5, 59.5, 4.0]) / 74)
    assert p[:5].sum() == 0
    for left in (BOS_ID, 5, 6, 7):  # a distribution over the units for every context, seen or not
        for right in (EOS_ID, 5, 6, 7):
            assert math.isclose(m.two_sided(left, right).sum(), 1.0)
    s = m.score_two_sided([[6]])
    assert s.tokens == 1 and s.top1 == 1.0 and math.isclose(s.perplexity, 74 / 59.5)


def test_two_sided_beats_unigram_where_neighbours_decide():
    cycle = [5, 6, 7, 8, 9]
    text = [[cycle[(i + j) % 5] for j in range(4)] for i in range(50)]
    m = CountModels(text, 10)
    dev = [[7, 8, 9], [9, 5, 6]]
    two, uni = m.score_two_sided(dev), m.score_masked_unigram(dev)
    assert two.top1 == 1.0 and two.perplexity < 1.5 < uni.perplexity


def test_soft_label_shares(tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    (d / "t.txt").write_text("the cat sat on the mat\nthe dog ran far away\n" * 20)
    tok = Tokenizer(train_tokenizer([d / "t.txt"], d / "sp", vocab_size=23))
    texts = {"u1": "the cat sat on the mat", "u2": "the dog ran far away", "u3": "the cat ran"}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"id": k, "audio": "x.wav", "text": t, "duration": 1.0}) + "\n" for k, t in texts.items())
    )
    out = tmp_path / "soft"
    meta = SoftLabelMeta("bert", "utterance", 8, 3.0, 0, tok.vocab_size, tokenizer_sha1(tok.model_bytes))
    prepare_dir(out, meta)
    rows, n_top1, n_top8, n = {}, 0, 0, 0
    for uid in ("u1", "u2"):  # u3 has no labels
        ref = np.array(tok.encode(texts[uid]))
        ids = np.array([[u for u in range(5, tok.vocab_size) if u != r][:8] for r in ref])
        for i in range(len(ref)):  # token i: reference first (i % 3 == 0), 4th (== 1) or absent (== 2)
            if i % 3 == 0:
                ids[i, 0], n_top1, n_top8 = ref[i], n_top1 + 1, n_top8 + 1
            elif i % 3 == 1:
                ids[i, 3], n_top8 = ref[i], n_top8 + 1
        n += len(ref)
        rows[uid] = (ids, np.full(ids.shape, 1 / 8, np.float32))
    write_shard(shard_path(out, 0), rows, tok.vocab_size)
    got = soft_label_quality(out, manifest, tok)
    assert got["tokens"] == n and got["utterances_without_labels"] == 1
    assert math.isclose(got["top1"], n_top1 / n) and math.isclose(got["topk"], n_top8 / n)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from kdasr.models.lm import LMConfig, TransformerLM
    from kdasr.teachers.bert import BertConfigLite, build_bert, save_bert_teacher
    from kdasr.teachers.lm_train import save_lm_teacher

    root = tmp_path_factory.mktemp("quality")
    teach = ["in the beginning god created the heavens and the earth", "the earth was formless and empty"]
    dev = ["god said let there be light", "and there was light"]
    (root / "teacher.txt").write_text("\n".join(teach * 3) + "\n\n" + "\n".join(teach[::-1]) + "\n")
    (root / "dev.txt").write_text("\n".join(dev) + "\n")
    tok = Tokenizer(train_tokenizer([root / "teacher.txt", root / "dev.txt"], root / "tok", vocab_size=32))
    torch.manual_seed(0)
    cfg = BertConfigLite(layers=1, hidden=32, heads=2, ff_dim=64, window=32)
    save_bert_teacher(build_bert(cfg, tok.vocab_size).eval(), tok, cfg, root / "bert", {})
    lm = TransformerLM(LMConfig(vocab_size=tok.vocab_size, d_model=32, layers=1, heads=2, ff_dim=64)).eval()
    save_lm_teacher(lm, tok, root / "lm", {})
    return root


@pytest.mark.slow
def test_quality_command_reports_untrained_teachers_as_not_beating_counts(tiny_setup):
    r = tiny_setup
    report = r / "report.md"
    args = ["teacher", "quality", "--tokenizer", str(r / "tok.model"), "--dev", str(r / "dev.txt")]
    args += ["--teacher-text", str(r / "teacher.txt"), "--bert", str(r / "bert"), "--lm", str(r / "lm")]
    args += ["--sentences", "2", "--report", str(report)]
    proc = run_kdasr(*args, "--strict", check=False)
    assert proc.returncode == 1, proc.stderr  # random teachers do not beat the count models
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["sentences"] == 2 and not data["passed"]
    assert set(data["baselines"]) == {"masked unigram", "two-sided count (l, r)", "unigram LM", "bigram LM"}
    assert data["bert"]["arch"] == "modernbert" and data["bert"]["beats_baselines"] is False
    assert "two-sided count" in report.read_text()
    # a dev set that shares a sentence with the teacher text is refused in one line
    (r / "leaky.txt").write_text("the earth was formless and empty\n")
    leaky = ["teacher", "quality", "--tokenizer", str(r / "tok.model"), "--dev", str(r / "leaky.txt")]
    proc = run_kdasr(*leaky, "--teacher-text", str(r / "teacher.txt"), "--sentences", "1", check=False)
    assert proc.returncode != 0 and "dev figures would be inflated" in proc.stderr and "Traceback" not in proc.stderr
