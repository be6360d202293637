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
from tests.conftest import run_kdasr, save_random_bert

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
    from kdasr.teachers.lm_train import save_lm_teacher

    root = tmp_path_factory.mktemp("quality")
    teach = ["in the beginning god created the heavens and the earth", "the earth was formless and empty"]
    dev = ["god said let there be light", "and there was light"]
    (root / "teacher.txt").write_text("\n".join(teach * 3) + "\n\n" + "\n".join(teach[::-1]) + "\n")
    (root / "dev.txt").write_text("\n".join(dev) + "\n")
    tok = Tokenizer(train_tokenizer([root / "teacher.txt", root / "dev.txt"], root / "tok", vocab_size=32))
    save_random_bert(tok, root / "bert", hidden=32, layers=1, window=32)
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
    text = report.read_text()
    assert "two-sided count" in text
    # per word: the 6 + 4 words of the two dev sentences, each masked whole
    assert "### Per word" in text and "| whole-word top-1 | word top-8 | first-unit top-1 | first-unit top-8 |" in text
    words = data["per_word"]
    assert words["words"] == 10 and words["words_not_in_teacher_text"] == 7  # all but "god", "and", "was"
    assert set(words["baselines"]) == {
        "word unigram",
        "word two-sided count (prev, next word)",
        "word two-sided count, length known",
        "unit two-sided count (unit before, unit after)",
    }
    bert = words["bert"]
    assert bert["words"] == 10 and bert["whole_word_top8"] is None
    assert 0 <= bert["whole_word_top1"] <= bert["first_unit_top1"] <= bert["first_unit_top8"] <= 1
    assert data["passed_words"] is bert["beats_baselines"] and f"| BERT (modernbert) `{r / 'bert'}` | 10 |" in text
    print(text)
    # a dev set that shares a sentence with the teacher text is refused in one line
    (r / "leaky.txt").write_text("the earth was formless and empty\n")
    leaky = ["teacher", "quality", "--tokenizer", str(r / "tok.model"), "--dev", str(r / "leaky.txt")]
    proc = run_kdasr(*leaky, "--teacher-text", str(r / "teacher.txt"), "--sentences", "1", check=False)
    assert proc.returncode != 0 and "dev figures would be inflated" in proc.stderr and "Traceback" not in proc.stderr


# -- per word -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def word_tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("wtok")
    (d / "t.txt").write_text("a bird sang and a bird flew\na cat sat on the mat\n" * 30)
    return Tokenizer(train_tokenizer([d / "t.txt"], d / "sp", vocab_size=26))


def test_word_grouping_and_whole_word_rows():
    from kdasr.teachers.word_quality import whole_word_rows, word_spans

    starts = np.zeros(12, bool)
    starts[[5, 9]] = True  # units 5 and 9 begin a word ('▁...'), 6-8 and 10-11 continue one
    assert word_spans([5, 9, 10, 11], starts) == [(0, 1), (1, 4)]  # words of 1 and 3 units
    assert word_spans([6, 5, 7], starts) == [(0, 1), (1, 3)]  # units before the first word start: a word
    assert word_spans([], starts) == []
    rows = whole_word_rows([[5, 9, 10, 11], [9, 6, 5]], starts, window=3)
    # the 3-unit word of sentence 0 crosses the window's end (3): not scored
    assert [(r.window, r.tokens, r.start, r.end) for r in rows] == [
        (0, (5, 9, 10), 0, 1),
        (1, (9, 6, 5), 0, 2),
        (1, (9, 6, 5), 2, 3),
    ]


@pytest.mark.parametrize("arch", ["bert", "modernbert"])
def test_span_batches_mask_the_whole_word_and_return_its_positions(arch):
    """The ids the model sees have the whole span masked; the logits are the full model's at those
    positions (its own forward on the masked ids)."""
    from kdasr.teachers.bert import BertConfigLite, build_bert
    from kdasr.teachers.mlm import SpanRow, run_span_batches

    torch.manual_seed(0)
    cfg = BertConfigLite(arch=arch, layers=1, hidden=16, heads=2, ff_dim=32, window=8, dropout=0.0)
    model = build_bert(cfg, 12).eval()
    seen = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    rows = [SpanRow(0, (5, 9, 10, 11), 1, 4), SpanRow(0, (5, 9, 10, 11), 0, 1), SpanRow(1, (6, 7), 0, 2)]
    got = list(run_span_batches(model, rows, 8192, mask_id=4))
    hook.remove()
    ids = {tuple(x.tolist()) for batch in seen for x in batch}
    assert ids == {(5, 4, 4, 4), (4, 9, 10, 11), (4, 4)}
    for chunk, logits in got:
        for r, lg in zip(chunk, logits, strict=True):
            masked = torch.tensor([r.tokens])
            masked[0, r.start : r.end] = 4
            with torch.no_grad():
                full = model(input_ids=masked).logits[0, r.start : r.end]
            assert lg.shape == (r.end - r.start, 12)
            torch.testing.assert_close(lg, full, atol=1e-5, rtol=1e-5)


def test_word_two_sided_count_model_by_hand():
    from kdasr.teachers.word_ngram import UNK, WordCounts, rank

    a, b, c, d, x, y = (5,), (6,), (7,), (11,), (8, 9), (10,)
    # "a x b" twice, "a y b" once, "c y d" three times: between a and b, x is top-1 (y is more
    # frequent overall, so the word unigram ranks y first)
    m = WordCounts([[a, x, b]] * 2 + [[a, y, b]] + [[c, y, d]] * 3, discount=0.5)
    ia, ib, ix, iy = (m.word_id(w) for w in (a, b, x, y))
    p = m.two_sided(ia, ib)
    assert int(np.argmax(p)) == ix and rank(p, iy) == 1 and np.isclose(p.sum(), 1.0)
    # trigram (a, ·, b): x twice, y once; 2 distinct, total 3 -> p(x) = 1.5/3 + (0.5 * 2 / 3) q(x)
    assert p[ix] > 0.5 and p[iy] > 0.5 / 3
    assert int(np.argmax(m.masked_unigram())) == iy
    assert m.word_id((12,)) == UNK and m.first_unit[ix] == 8 and m.n_units[ix] == 2
    # first-unit marginal: word x's mass goes to unit 8, y's to unit 10
    u = m.first_unit_marginal(p, 13)
    assert np.isclose(u[8], p[ix]) and np.isclose(u[10], p[iy]) and np.isclose(u.sum(), 1.0)
    # an unseen context backs off to the bigrams/unigrams and is still a distribution over words
    q = m.two_sided(m.word_id(c), UNK)
    assert np.isclose(q.sum(), 1.0) and q[:3].sum() == 0


def test_count_word_figures_on_a_toy_text(word_tok):
    from kdasr.teachers.word_quality import count_word_figures, whole_word_rows, word_start_units

    tok = word_tok
    starts = word_start_units(tok)
    teach = [tok.encode(s) for s in ["a bird sang and a bird flew", "a cat sat on the mat"] * 5]
    dev = [tok.encode("a bird sat on the mat"), tok.encode("a dog sang")]
    rows = whole_word_rows(dev, starts, 64)
    assert len(rows) == 9
    figs, oov = count_word_figures(teach, dev, rows, starts, CountModels(teach, tok.vocab_size))
    assert oov == 1  # "dog"
    two = figs["word two-sided count (prev, next word)"]
    # hits: a (<s> _ bird), on, the, mat (trigrams seen with them); sat (bird _ on: unseen, but
    # p(sat | bird) p(on | sat) beats p(sang | bird) p(on | sang)); a (<s> _ dog: only "a" starts a
    # sentence). Misses: bird (a _ sat: the text has "a cat sat"), dog (not in the text), sang
    # (dog _ </s>: flew and mat end sentences, sang does not)
    assert two["words"] == 9 and two["whole_word_top1"] == pytest.approx(6 / 9)
    assert figs["word unigram"]["whole_word_top1"] == pytest.approx(2 / 9)  # "a" is the most frequent word
    unit = figs["unit two-sided count (unit before, unit after)"]
    assert unit["whole_word_top1"] is None and 0 <= unit["first_unit_top1"] <= unit["first_unit_top8"] <= 1
