"""How the runtime splits its graph calls without changing a result: step calls split by utterance
length (frame groups) and capped in rows x frames, memory shared per utterance instead of copied
per hypothesis, and the encoder fed a batch in smaller calls."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import corpus_waves

from kdasr.runtime import DecodeOptions, Transcriber
from kdasr.runtime.search.scorers import DecoderScorer


def test_frame_groups_split_where_it_saves_and_join_exactly(tiny_corpus, tiny_model, monkeypatch):
    """Rows of short utterances beside long ones go in step calls of their own, cut to their own
    frames; the joined outputs equal one call over all rows (padding frames carry zero attention)."""
    import kdasr.runtime.search.scorers as scorers

    lens = np.repeat([20, 22, 60, 61], 3)
    groups = scorers.frame_groups(lens)
    assert [(g.start, g.stop) for g in groups] == [(0, 6), (6, 12)]
    assert scorers.frame_groups(np.repeat([50, 51, 52], 3)) == [slice(0, 9)]  # nothing to save
    t = Transcriber(tiny_model, vad=False)
    waves = sorted(corpus_waves(tiny_corpus, 5), key=len)
    waves = [waves[0][: len(waves[0]) // 3], *waves[1:]]  # one much shorter utterance
    lens = np.array([len(w) for w in waves])
    batch = np.zeros((len(waves), lens.max()), np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    enc = t.model.encode(batch, lens)
    rows = np.repeat(np.arange(len(waves)), 3)

    def steps(split):
        monkeypatch.setattr(scorers, "SPLIT_GAIN", 0.1 if split else 2.0)
        scorer = DecoderScorer(t.model, enc)
        state, tokens, out = scorer.init_state(rows), np.full(len(rows), t.model.spec.special_ids.bos), []
        for _ in range(4):
            logp, state = scorer.score(tokens, state, rows)
            tokens = logp.argmax(-1)
            out.append((logp, state))
        return out, scorer

    split, s1 = steps(True)
    whole, s2 = steps(False)
    assert len(s1._groups) > 1 and len(s2._groups) == 1
    for (a, sa), (b, sb) in zip(split, whole):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        for name in sa:
            assert sa[name].shape == sb[name].shape
            np.testing.assert_allclose(sa[name], sb[name], rtol=0, atol=1e-5)


def test_memory_shared_per_utterance_gives_the_nbest_of_copies_per_hypothesis(tiny_model, tiny_corpus, tmp_path):
    """Format 3's step graph takes one memory row per utterance and broadcasts it over the
    utterance's hypotheses; fed a copy per hypothesis (the old layout: a model.json that declares
    'batch' memory), the same graph sees one hypothesis per row. Same n-best and scores both ways."""
    import json

    from kdasr.runtime.search.scorers import hypothesis_blocks

    spec = json.loads((tiny_model / "model.json").read_text())
    assert [m["shape"][0] for m in spec["decoder_io"]["memory"]] == ["utterances"] * 3
    copies = tmp_path / "copies"
    shutil.copytree(tiny_model, copies)
    for m in spec["decoder_io"]["memory"]:
        m["shape"][0] = "batch"
    (copies / "model.json").write_text(json.dumps(spec))
    waves = corpus_waves(tiny_corpus, 4)
    opts = DecodeOptions(beam=4, nbest=4, ctc_weight=0.3)
    shared, copied = (Transcriber(d, threads=1, vad=False).decode_hypotheses(waves, opts) for d in (tiny_model, copies))
    assert [[h.tokens for h in nb] for nb in shared] == [[h.tokens for h in nb] for nb in copied]
    np.testing.assert_allclose([h.score for nb in shared for h in nb], [h.score for nb in copied for h in nb],
                               rtol=0, atol=1e-4)
    assert hypothesis_blocks(np.array([3, 3, 5, 5, 7, 7]))[1] == 2
    with pytest.raises(Exception, match="equal consecutive blocks"):
        hypothesis_blocks(np.array([3, 3, 5, 7, 7, 7]))


def test_encoding_a_batch_in_smaller_calls_changes_no_result(tiny_model, tiny_corpus, monkeypatch):
    """On the CPU the encoder takes a batch CPU_ENCODER_ROWS rows at a time (each call cut to its
    longest wave) and the outputs are joined with zero padding: the same n-best as one call."""
    import kdasr.runtime.onnx_model as onnx_model

    waves = corpus_waves(tiny_corpus, 5)
    opts = DecodeOptions(beam=3, nbest=3, ctc_weight=0.3, batch_size=5)
    t = Transcriber(tiny_model, threads=1, vad=False)
    runs = {}
    for rows in (1000, 2):
        monkeypatch.setattr(onnx_model, "CPU_ENCODER_ROWS", rows)
        runs[rows] = t.decode_hypotheses(waves, opts)
    assert [[h.tokens for h in nb] for nb in runs[2]] == [[h.tokens for h in nb] for nb in runs[1000]]
    np.testing.assert_allclose([h.score for nb in runs[2] for h in nb], [h.score for nb in runs[1000] for h in nb],
                               rtol=0, atol=1e-3)
    lens = np.array([len(w) for w in waves])
    batch = np.zeros((len(waves), lens.max()), np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    split = t.model.encode(batch, lens)  # rows=2: three calls
    monkeypatch.setattr(onnx_model, "CPU_ENCODER_ROWS", 1000)
    whole = t.model.encode(batch, lens)
    io = t.model.spec.encoder
    frames = whole[io.lens]
    assert split[io.lens].tolist() == frames.tolist()
    for name, x in whole.items():
        assert split[name].shape == x.shape, name
        if x.ndim == 3:  # [rows, frames, dim]: equal on every utterance's valid frames
            for i, n in enumerate(frames):
                np.testing.assert_allclose(split[name][i, :n], x[i, :n], rtol=0, atol=1e-4)


def test_step_calls_capped_in_rows_change_no_result(tiny_model, tiny_corpus, monkeypatch):
    """On the CPU a step call takes at most CPU_DECODER_ROW_FRAMES hypothesis rows x frames (whole
    utterances, at least one): the same n-best and scores as all rows in one call, in more calls."""
    import kdasr.runtime.search.scorers as scorers

    assert [(c.start, c.stop) for c in scorers._chunks(slice(3, 10), 3)] == [(3, 5), (5, 7), (7, 10)]
    waves = corpus_waves(tiny_corpus, 5)
    opts = DecodeOptions(beam=3, nbest=3, ctc_weight=0.3, batch_size=5)
    t = Transcriber(tiny_model, threads=1, vad=False)
    monkeypatch.setattr(scorers, "SPLIT_GAIN", 2.0)  # no calls split by frames: only the row cap splits
    calls, runs = {}, {}
    step = t.model.decoder_step
    for budget in (10**9, 1):  # everything in one call; one utterance a call (the least)
        monkeypatch.setattr(scorers, "CPU_DECODER_ROW_FRAMES", budget)
        calls[budget] = []
        monkeypatch.setattr(t.model, "decoder_step", lambda f, b=budget: calls[b].append(len(f["tokens"])) or step(f))
        runs[budget] = t.decode_hypotheses(waves, opts)
    big, small = 10**9, 1
    assert max(calls[small]) <= 3 < max(calls[big])  # beam 3: one utterance's rows a call
    assert len(calls[small]) > len(calls[big])
    assert [[h.tokens for h in nb] for nb in runs[small]] == [[h.tokens for h in nb] for nb in runs[big]]
    np.testing.assert_allclose([h.score for nb in runs[small] for h in nb], [h.score for nb in runs[big] for h in nb],
                               rtol=0, atol=1e-4)
