"""Per-utterance scores (their sums are the set's totals), records that carry them (old records
still read), and the paired bootstrap: a strictly better system's interval excludes 0, identical
systems' contains it. No model: synthetic texts and counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdasr.eval.bootstrap import align, paired_relative_change, rate_interval
from kdasr.eval.results import per_utterance, read_results, result_record, write_result
from kdasr.eval.run import EvalReport
from kdasr.eval.wer import error_rates, utterance_scores

REFS = ["the cat sat on the mat", "", "a b c d", "hello world", "one two three"]
HYPS = ["the cat sat mat", "oops here", "a x c d e", "hello world", "one three two four"]


def test_utterance_scores_sum_to_the_set_totals():
    ids = [f"u{i}" for i in range(len(REFS))]
    scores = utterance_scores(ids, REFS, HYPS)
    totals = error_rates(REFS, HYPS)
    assert [s.id for s in scores] == ids
    assert sum(s.word_errors for s in scores) == totals.word_errors
    assert sum(s.words for s in scores) == totals.words
    assert [s.word_errors for s in scores] == [2, 2, 2, 0, 2]  # 2 deletions; 2 insertions; sub + ins; 0; ins + sub
    assert [s.words for s in scores] == [6, 0, 4, 2, 3]
    chars = sum(s.chars for s in scores)
    assert 100 * sum(s.char_errors for s in scores) / chars == pytest.approx(totals.cer)
    with pytest.raises(ValueError):
        utterance_scores(ids[:2], REFS, HYPS)


def test_record_carries_per_utterance_and_old_records_read(tmp_path):
    ids = [f"u{i}" for i in range(len(REFS))]
    report = EvalReport(error_rates(REFS, HYPS), 0, 12.5, scores=utterance_scores(ids, REFS, HYPS))
    rec = result_record("sys", tmp_path / "dev.jsonl", report, 1.0, 1)
    write_result(tmp_path / "r.json", rec)
    back = per_utterance(read_results([tmp_path / "r.json"])[0])
    assert list(back["ids"]) == ids and back["word_errors"].sum() == rec["word_errors"]
    assert back["words"].sum() == rec["words"]
    old = {k: v for k, v in rec.items() if k not in ("per_utterance", "record_version")}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert per_utterance(read_results([tmp_path / "old.json"])[0]) is None
    broken = {**rec, "per_utterance": {**rec["per_utterance"], "words": [1]}}
    with pytest.raises(ValueError, match="length"):
        per_utterance(broken)


def _base(n=400, seed=3):
    rng = np.random.default_rng(seed)
    return rng.poisson(2.0, n), rng.integers(5, 20, n)


def test_strictly_better_system_interval_excludes_zero():
    base, _ = _base()
    better = base.copy()
    better[::3] = np.maximum(better[::3] - 1, 0)  # never worse, better on some utterances
    ci = paired_relative_change(better, base, resamples=1000, seed=7)
    assert ci.high < 0 and ci.low <= ci.estimate <= ci.high
    worse = paired_relative_change(base + (np.arange(len(base)) % 4 == 0), base, resamples=1000)
    assert worse.low > 0


def test_identical_and_equivalent_systems_interval_contains_zero():
    base, words = _base()
    same = paired_relative_change(base, base, resamples=1000)
    assert same.contains(0.0) and same.estimate == 0.0
    # same errors shuffled between utterances: same total, different per utterance; still 0 inside
    shuffled = np.random.default_rng(5).permutation(base)
    assert paired_relative_change(shuffled, base, resamples=1000).contains(0.0)
    # seeded: the same call gives the same interval
    assert paired_relative_change(shuffled, base, seed=1) == paired_relative_change(shuffled, base, seed=1)
    wer = rate_interval(base, words)
    assert wer.low < wer.estimate < wer.high and wer.estimate == pytest.approx(100 * base.sum() / words.sum())


def test_align_pairs_by_id_and_refuses_repeats():
    a, b = align(np.array(["x", "y", "z"], object), np.array(["z", "x", "q"], object))
    assert list(a) == [2, 0] and list(b) == [0, 1]
    with pytest.raises(ValueError, match="repeat"):
        align(np.array(["x", "x"], object), np.array(["x"], object))
    with pytest.raises(ValueError, match="common"):
        align(np.array(["x"], object), np.array(["y"], object))


def test_draws_where_the_baseline_makes_no_error_are_left_out_not_infinite():
    """Every baseline error in one utterance of 20: about a third of the draws miss it (x / 0). Those
    draws have no relative change; the interval is over the others and stays finite."""
    base = np.zeros(20)
    base[3] = 4
    other = np.ones(20)
    ci = paired_relative_change(other, base, resamples=1000, seed=2)
    assert np.isfinite(ci.low) and np.isfinite(ci.high) and ci.low <= ci.estimate <= ci.high
    assert ci.estimate == pytest.approx(100 * (20 / 4 - 1))
