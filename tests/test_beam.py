"""Batched beam search over ORT: equals the torch reference (same n-best), does not depend on the
batch, beam 1 equals greedy, LM fusion at weight 0 changes nothing; rescoring scores equal torch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import corpus_waves

from kdasr.models.reference_beam import torch_beam_search
from kdasr.models.student_io import load_student
from kdasr.runtime import DecodeOptions, Transcriber
from kdasr.runtime.search.beam import beam_search
from kdasr.runtime.search.greedy import attention_greedy, length_limits
from kdasr.runtime.search.scorers import DecoderScorer
from kdasr.teachers.lm_train import load_lm_teacher as load_lm


@pytest.fixture(scope="module")
def model_with_lm(tiny_model_with_teachers):
    """A copy of the tiny model dir with a random tiny LM and BERT exported into it (export-lm --check),
    and the folder of those torch teachers (conftest: test_tune shares it)."""
    return tiny_model_with_teachers


def _lens_and_ctc(t, enc):
    io = t.model.spec.encoder
    return enc[io.lens], enc[io.ctc_logprobs]


def _reference(model, t, wave, opts, lm_step=None):
    ids = t.model.spec.special_ids
    enc = t.model.encode(wave[None], np.array([len(wave)]))
    limit = int(length_limits(*_lens_and_ctc(t, enc), ids.blank, opts)[0])
    return torch_beam_search(
        model,
        torch.from_numpy(wave),
        ids.bos,
        ids.eos,
        ids.blank,
        opts,
        limit,
        lm=(lm_step, None) if lm_step else None,
    )


@pytest.mark.parametrize(
    "opts",
    [
        DecodeOptions(beam=3, nbest=3, length_penalty=1.0),
        DecodeOptions(beam=3, nbest=3, ctc_weight=0.3, length_bonus=0.5),
    ],
    ids=["attention", "joint-ctc"],
)
def test_ort_beam_equals_torch_reference(tiny_corpus, tiny_model, opts):
    model = load_student([tiny_model.parent / "last.pt"]).model
    t = Transcriber(tiny_model, vad=False)
    waves = corpus_waves(tiny_corpus, 2)
    for wave, got in zip(waves, t.transcribe(waves, opts)):
        ref = _reference(model, t, wave, opts)
        assert [n.tokens for n in got.nbest] == [r[0] for r in ref]
        np.testing.assert_allclose([n.score for n in got.nbest], [r[1] for r in ref], rtol=1e-4, atol=1e-3)


def test_ort_fusion_equals_torch_reference(tiny_corpus, tiny_model, model_with_lm):
    model_dir, root = model_with_lm
    model = load_student([tiny_model.parent / "last.pt"]).model
    lm, _ = load_lm(root / "lm", None)

    def lm_step(tokens, cache):
        logits, cache = lm.step(tokens, cache)
        return torch.log_softmax(logits, -1), cache

    t = Transcriber(model_dir, vad=False)
    opts = DecodeOptions(beam=3, nbest=2, lm_weight=0.5, length_bonus=0.3)
    wave = corpus_waves(tiny_corpus, 1)[0]
    got = t.transcribe([wave], opts)[0]
    with torch.no_grad():
        ref = _reference(model, t, wave, opts, lm_step)
    assert [n.tokens for n in got.nbest] == [r[0] for r in ref]


def test_mixed_length_batch_equals_one_by_one(tiny_corpus, model_with_lm):
    t = Transcriber(model_with_lm[0], vad=False)
    waves = corpus_waves(tiny_corpus, 5)
    assert len({len(w) for w in waves}) > 1
    for opts in (DecodeOptions(beam=4, nbest=4, ctc_weight=0.3), DecodeOptions(beam=3, nbest=3, lm_weight=0.3)):
        batched = t.transcribe(waves, replace(opts, batch_size=16))
        single = [t.transcribe([w], replace(opts, batch_size=1))[0] for w in waves]
        assert [[n.tokens for n in r.nbest] for r in batched] == [[n.tokens for n in r.nbest] for r in single]


def test_beam_one_is_greedy_and_lm_weight_zero_changes_nothing(tiny_corpus, model_with_lm):
    t = Transcriber(model_with_lm[0], vad=False)
    waves = corpus_waves(tiny_corpus, 4)
    lens = np.array([len(w) for w in waves])
    batch = np.zeros((len(waves), lens.max()), np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    enc = t.model.encode(batch, lens)
    ids, opts = t.model.spec.special_ids, DecodeOptions()
    limits = length_limits(*_lens_and_ctc(t, enc), ids.blank, opts)

    def search(beam, full_lm, weights):
        full = {"decoder": DecoderScorer(t.model, enc)}
        if full_lm:
            full["lm"] = t.teacher("lm").scorer()
        hyps = beam_search(full, weights, limits, ids.bos, ids.eos, DecodeOptions(beam=beam, nbest=beam))
        return [[(h.tokens, h.score) for h in nb] for nb in hyps]

    greedy = attention_greedy(t.model, enc, opts)
    assert [[list(h[0]) for h in nb] for nb in search(1, False, {"decoder": 1.0})] == [[g] for g in greedy]
    plain = search(3, False, {"decoder": 1.0})
    assert search(3, True, {"decoder": 1.0, "lm": 0.0}) == plain


def test_rescoring_scores_equal_torch(model_with_lm):
    from kdasr.teachers.bert import load_bert_teacher, pseudo_perplexity

    model_dir, root = model_with_lm
    t = Transcriber(model_dir, vad=False)
    ids = t.model.spec.special_ids
    seqs = [(10, 11, 12), (7,), (20, 21, 22, 23, 24, 25, 26, 27)]
    lm, tok = load_lm(root / "lm", None)
    with torch.no_grad():
        for s, got in zip(seqs, t.teacher("lm").sequence_scores(seqs)):
            logp = torch.log_softmax(lm(torch.tensor([[ids.bos, *s]]))[0], -1)
            target = torch.tensor([*s, ids.eos])
            assert abs(float(logp[torch.arange(len(target)), target].sum()) - got) < 1e-3
    teacher = load_bert_teacher(root / "bert", tok)
    pll = t.teacher("bert").sequence_scores(seqs)  # all masks of all sequences in one batch
    for s, got in zip(seqs, pll):
        ref = -len(s) * np.log(pseudo_perplexity(teacher, [list(s)]))
        assert abs(ref - got) < 1e-3
    # a token budget of 16 splits the 12 masked rows (width 8) into calls of 2 rows: same scores
    bert = t.teacher("bert")
    calls = []
    bert.session = _Spy(bert.session, calls)
    bert.max_tokens = 16
    assert np.allclose(bert.sequence_scores(seqs), pll, atol=1e-4)
    assert len(calls) == 6 and all(ids.size <= 16 for ids in calls)
    res = t.transcribe(_waves_from(model_dir), DecodeOptions(beam=3, nbest=3, rescore="bert"))
    assert all(len(r.nbest) == 3 and r.nbest[0].score >= r.nbest[-1].score for r in res)


class _Spy:
    """A real session that records the input_ids of every call."""

    def __init__(self, session, calls):
        self.session, self.calls = session, calls

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, names, feeds):
        self.calls.append(feeds["input_ids"])
        return self.session.run(names, feeds)


def _waves_from(model_dir):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(16000 * s).astype(np.float32) * 0.05 for s in (1, 2)]


def _random_ctc(rng, u=2, t=24, v=12):
    logits = rng.standard_normal((u, t, v)).astype(np.float32) * 3
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), np.array([t, t - 7])


def test_lm_past_its_last_position_scores_its_reach_and_then_abstains(model_with_lm):
    """A hypothesis longer than the LM's max_len (a looping student; the toy LM's 128) is rescored over
    the LM's first max_len positions, as torch scores them, not a failed batch; in fusion, the step
    after the last position gives zeros (no opinion) and keeps the state."""
    model_dir, root = model_with_lm
    t = Transcriber(model_dir, vad=False)
    ids, lm_ort = t.model.spec.special_ids, t.teacher("lm")
    reach = lm_ort.spec.max_len
    assert reach == 128
    long_seq, short = tuple(10 + i % 20 for i in range(reach + 40)), (7, 8)
    got = lm_ort.sequence_scores([long_seq, short])
    lm, _ = load_lm(root / "lm", None)
    with torch.no_grad():
        logp = torch.log_softmax(lm(torch.tensor([[ids.bos, *long_seq[: reach - 1]]]))[0], -1)
        want = float(logp[torch.arange(reach), torch.tensor(long_seq[:reach])].sum())
    assert abs(got[0] - want) < 1e-2 and np.isfinite(got[1])
    state = lm_ort.empty_state(1)
    for tok in (ids.bos, *long_seq[: reach - 1]):
        _, state = lm_ort.step(np.array([tok]), state)
    assert lm_ort.steps_done(state) == reach
    logprobs, after = lm_ort.step(np.array([long_seq[reach - 1]]), state)
    assert logprobs.shape == (1, lm_ort.spec.vocab_size) and not logprobs.any()
    assert all(after[k] is state[k] for k in state)


def test_ctc_prefix_scores_equal_textbook_recursion():
    """The vectorised scorer against the float64 textbook forward recursion of the torch reference,
    over several steps of growing prefixes (repeated labels included), for utterances of two lengths."""
    from kdasr.models.reference_beam import _prefix_psi, ctc_prefix_scores
    from kdasr.runtime.search.ctc_prefix import CTCPrefixScorer

    rng = np.random.default_rng(3)
    lp, lens = _random_ctc(rng)
    blank, eos = 0, 3
    scorer = CTCPrefixScorer(lp, lens, blank, eos)
    rows = np.array([0, 0, 1])
    state, prefixes = scorer.init_state(rows), [[], [], []]
    for step in range(5):
        others = [c for c in range(1, 12) if c != eos]
        cand = np.array([[eos, *rng.choice(others, 4, replace=False)] for _ in rows])
        if step:
            cand[0, 1] = prefixes[0][-1]  # a repeated label takes the blank-ending path only
        got, new = scorer.score(state, rows, cand, step)
        for i, r in enumerate(rows):
            x = torch.from_numpy(lp[r, : lens[r]])
            ref = np.array(ctc_prefix_scores(x, prefixes[i], cand[i].tolist(), blank, eos))
            ref -= _prefix_psi(x, prefixes[i], blank)
            np.testing.assert_allclose(got[i], ref, rtol=1e-4, atol=2e-3)
        col = np.array([1, 2, 3])
        state = scorer.select(new, cand, np.arange(len(rows)), col)
        prefixes = [p + [int(cand[i, c])] for i, (p, c) in enumerate(zip(prefixes, col))]


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 16, 17, 130])
def test_blocked_forward_recursion_equals_frame_loop(frames):
    """The blocked CTC forward recursion (sqrt(T) blocks) against the frame-by-frame loop it
    replaces, in float64; -inf drives (frames before a prefix can end) and -inf starts included."""
    from kdasr.runtime.search.ctc_prefix import forward_recursion

    rng = np.random.default_rng(frames)
    s = 7
    drive = (rng.standard_normal((frames, s)) * 5 - 10).astype(np.float32)
    drive[: frames // 3, :3] = -np.inf
    x = (np.log(rng.random((frames, s))) * 3).astype(np.float32)
    init = np.array([-np.inf, -np.inf, 0.0, -2.0, -np.inf, -30.0, 1.0], np.float32)
    want = np.empty((frames, s))
    prev = init.astype(np.float64)
    for t in range(frames):
        prev = np.logaddexp(prev, drive[t].astype(np.float64)) + x[t]
        want[t] = prev
    got = forward_recursion(drive, x, init)
    assert got.shape == (frames, s) and got.dtype == np.float32
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-4)
    assert forward_recursion(drive[:, :0], x[:, :0], init[:0]).shape == (frames, 0)


def test_candidate_tokens_equal_stable_full_sort():
    from kdasr.runtime.search.beam import candidate_tokens

    rng = np.random.default_rng(5)
    for trial in range(50):
        total = rng.standard_normal((20, 64)).round(1 if trial % 2 else 6)  # rounding makes ties
        total[rng.random(total.shape) < 0.05] = -np.inf
        masked = total.copy()
        masked[:, 3] = -np.inf
        want = np.argsort(-masked, axis=1, kind="stable")[:, :9]
        got = candidate_tokens(total, 3, 9)
        assert (got[:, 0] == 3).all() and np.array_equal(got[:, 1:], want)


class _TableScorer:
    """A FullScorer whose log-probs depend on the last token only (a random bigram table)."""

    def __init__(self, table):
        self.table, self.rows_scored = table, 0

    def init_state(self, rows):
        return np.zeros(len(rows))

    def score(self, tokens, state, rows):
        self.rows_scored += len(rows)
        return self.table[tokens], state

    def select_state(self, state, src):
        return state[src]


def test_early_exit_keeps_the_nbest(monkeypatch):
    import kdasr.runtime.search.beam as beam

    rng = np.random.default_rng(7)
    logits = rng.standard_normal((16, 16)) * 2
    logits[:, 3] += 1.0  # <eos> likely enough that hypotheses end at different steps
    logits[2, 3] += 4.0  # ... and the empty hypothesis best by far: the 1-best is known at step 0
    table = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    limits = np.array([12, 5, 9])

    def run(nbest):
        scorer = _TableScorer(table)
        return beam.beam_search({"decoder": scorer}, {"decoder": 1.0}, limits, 2, 3,
                                DecodeOptions(beam=4, nbest=nbest)), scorer

    for nbest in (1, 2, 4):
        fast, fast_scorer = run(nbest)
        monkeypatch.setattr(beam, "can_stop_early", lambda *a: False)
        full, full_scorer = run(nbest)
        monkeypatch.undo()
        assert [[h.tokens for h in nb] for nb in fast] == [[h.tokens for h in nb] for nb in full]
        np.testing.assert_allclose([h.score for nb in fast for h in nb], [h.score for nb in full for h in nb])
        if nbest == 1:
            assert fast_scorer.rows_scored < full_scorer.rows_scored  # it did stop early
