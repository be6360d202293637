"""kdasr.eval.seed_bootstrap: WER mean ± sd over seeds and the bootstrap over seeds and utterances
together, on synthetic per-utterance counts (numpy only, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from kdasr.errors import KdasrError
from kdasr.eval.bootstrap import paired_relative_change, rate_interval
from kdasr.eval.seed_bootstrap import SeedRecord, seed_bootstrap, stack, summary

N = 400


def _words(n=N):
    return np.random.default_rng(7).integers(3, 20, n)


def _errors(p, seed, n=N):
    return np.random.default_rng(seed).binomial(_words(n), p)


def _ids(n=N):
    return [f"u{i}" for i in range(n)]


def _rec(system, seed, errors, ids=None, words=None, source=None):
    ids = _ids(len(errors)) if ids is None else ids
    words = _words(len(errors)) if words is None else words
    return SeedRecord(system, str(seed), ids, np.asarray(errors), np.asarray(words), source or f"{system}-s{seed}.json")


def _width(iv):
    return iv.high - iv.low


def test_identical_seeds_give_the_utterance_only_interval():
    base, other = _errors(0.2, 1), _errors(0.18, 2)
    runs = stack([_rec("a", k, other) for k in (1, 2, 3)] + [_rec("b", k, base) for k in (1, 2, 3)])
    boot = seed_bootstrap(runs, resamples=2000, seed=0)
    utt_only = rate_interval(other, _words(), resamples=2000, seed=0)
    a = boot.wer["a"]
    assert a.estimate == pytest.approx(utt_only.estimate, abs=1e-9)
    assert a.low == pytest.approx(utt_only.low, abs=0.02) and a.high == pytest.approx(utt_only.high, abs=0.02)
    paired = paired_relative_change(other, base, resamples=2000, seed=0)
    change = boot.pairs[("a", "b")].change
    assert change.estimate == pytest.approx(paired.estimate, abs=1e-9)
    assert change.low == pytest.approx(paired.low, abs=0.1) and change.high == pytest.approx(paired.high, abs=0.1)


def test_seed_variance_widens_the_interval():
    mid = _errors(0.2, 1)
    low, high = _errors(0.1, 2), _errors(0.3, 3)  # seeds that disagree wildly, same mean as `mid`
    wild = stack([_rec("x", 1, low), _rec("x", 2, mid), _rec("x", 3, high)])
    calm = stack([_rec("x", k, mid) for k in (1, 2, 3)])
    w_wild, w_calm = seed_bootstrap(wild).wer["x"], seed_bootstrap(calm).wer["x"]
    assert abs(w_wild.estimate - w_calm.estimate) < 1.0
    assert _width(w_wild) > 3 * _width(w_calm)
    s = summary(wild["x"])
    per = list(s.per_seed.values())
    assert s.sd == pytest.approx(np.std(per, ddof=1)) and s.mean == pytest.approx(np.mean(per))
    assert summary(stack([_rec("y", 1, mid)])["y"]).sd is None  # one seed: no sd


def test_a_clearly_better_system_excludes_zero():
    base = [_errors(0.25, k) + 1 for k in (1, 2, 3)]
    better = [b - 1 for b in base]  # one error fewer on every utterance, every seed
    runs = stack([_rec("base", k, e) for k, e in zip((1, 2, 3), base)]
                 + [_rec("better", k, e) for k, e in zip((1, 2, 3), better)])
    boot = seed_bootstrap(runs)
    pair = boot.pairs[("better", "base")]
    assert pair.change.high < 0 and pair.excludes_zero and pair.p_a_better == 1.0
    back = boot.pairs[("base", "better")]
    assert back.change.low > 0 and back.p_a_better == 0.0
    assert set(boot.pairs) == {("better", "base"), ("base", "better")}


def test_deterministic_under_the_same_seed():
    recs = [_rec(s, k, _errors(p, 10 * k + i)) for i, (s, p) in enumerate((("a", 0.2), ("b", 0.22)))
            for k in (1, 2, 3)]
    one, two = seed_bootstrap(stack(recs), seed=5), seed_bootstrap(stack(recs), seed=5)
    assert one.wer == two.wer and one.pairs == two.pairs
    other = seed_bootstrap(stack(recs), seed=6)
    assert other.wer["a"].low != one.wer["a"].low
    # a system's interval does not move when another system joins
    alone = seed_bootstrap(stack([r for r in recs if r.system == "a"]), seed=5)
    assert alone.wer["a"] == one.wer["a"]


def test_fewer_resamples_and_seed_counts_that_differ():
    recs = [_rec("a", 1, _errors(0.2, 1)), _rec("b", 1, _errors(0.2, 2)), _rec("b", 2, _errors(0.2, 3))]
    boot = seed_bootstrap(stack(recs), resamples=50)
    assert boot.resamples == 50 and boot.wer["b"].low <= boot.wer["b"].estimate <= boot.wer["b"].high


def test_misaligned_ids_name_system_seed_and_file():
    e = _errors(0.2, 1)
    short = _rec("b", 2, e[:-1], ids=_ids()[:-1], words=_words()[:-1], source="runs/b-s2.json")
    with pytest.raises(KdasrError, match=r"b seed 2 \(runs/b-s2.json\): lacks 1 of the 400 utterances"):
        stack([_rec("a", 1, e), short])
    renamed = _rec("b", 3, e, ids=_ids()[:-1] + ["zz"], source="runs/b-s3.json")
    with pytest.raises(KdasrError, match=r"b seed 3 \(runs/b-s3.json\).*'u399'"):
        stack([_rec("a", 1, e), renamed])
    with pytest.raises(KdasrError, match="a second record of this system and seed"):
        stack([_rec("a", 1, e), _rec("a", 1, e)])
    other_refs = _words() + 1
    with pytest.raises(KdasrError, match="not the same references"):
        stack([_rec("a", 1, e), _rec("b", 1, e, words=other_refs)])
    # the same utterances in another order are fine: aligned by id
    perm = np.random.default_rng(0).permutation(N)
    shuffled = _rec("b", 1, e[perm], ids=[_ids()[i] for i in perm], words=_words()[perm])
    runs = stack([_rec("a", 1, e), shuffled])
    assert np.array_equal(runs["b"].errors[0], e)


@pytest.mark.filterwarnings("error")  # no numpy warning either
def test_degenerate_sets_give_no_interval_and_ties_count_as_no_change():
    zero = np.zeros(4, np.int64)
    empty = stack([_rec("a", 1, [0, 1, 0, 2], words=zero), _rec("b", 1, [1, 1, 0, 0], words=zero)])
    boot = seed_bootstrap(empty, resamples=200)
    assert np.isnan(boot.wer["a"].estimate) and np.isnan(boot.wer["a"].low)
    assert boot.pairs[("a", "b")].change is None and not boot.pairs[("a", "b")].excludes_zero
    # a perfect system against one with errors on a single utterance: draws without that utterance tie
    # (0 against 0: no change), so the interval reaches 0 and nothing is claimed
    words = np.full(4, 5)
    runs = stack([_rec("a", 1, [0, 0, 0, 0], words=words), _rec("b", 1, [0, 0, 0, 1], words=words)])
    pair = seed_bootstrap(runs, resamples=500).pairs[("a", "b")]
    assert pair.change.estimate == -100 and pair.change.high == 0 and not pair.excludes_zero
    assert 0.5 < pair.p_a_better < 0.8  # 1 - (3/4)^4 of the draws hold the utterance
