"""Confidence intervals over utterances by the bootstrap (numpy, seeded). Torch-free.

Paired: both systems' errors on the *same* resampled utterances, so the interval is about their
difference, not about how hard the set is. Rates are pooled (errors / reference words summed over
the resample), like the WER itself. Intervals are percentiles of the resampled statistic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
METHOD = ("paired bootstrap over utterances ({n} resamples, numpy seed {seed}; percentile {level:g} % interval; "
          "pooled rate = errors / reference words of the resample)")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    utterances: int

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) utterance positions drawn with replacement; kdasr.eval.seed_bootstrap makes
    the same draws at the same seed."""
    if n < 1:
        raise ValueError("no utterances to resample")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_bounds(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` % of the samples (NaN draws, e.g. a zero denominator, left out)."""
    tail = (100 - level) / 2
    low, high = np.nanpercentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def rate_interval(errors: np.ndarray, totals: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = DEFAULT_SEED, level: float = 95.0) -> Interval:
    """Error rate in percent (errors / totals pooled) with its bootstrap interval."""
    errors, totals = np.asarray(errors, np.float64), np.asarray(totals, np.float64)
    idx = resample_indices(len(errors), resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = 100 * errors[idx].sum(1) / totals[idx].sum(1)
        estimate = 100 * errors.sum() / totals.sum()
    return Interval(float(estimate), *percentile_bounds(samples, level), len(errors))


def paired_relative_change(errors: np.ndarray, base_errors: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED, level: float = 95.0) -> Interval:
    """Relative change in percent of a system's error count against the baseline's on the same
    utterances (= relative WER change, the reference words being the same): 100 * (E / E_base - 1).
    Utterances must be aligned (same order); see `align`."""
    errors, base = np.asarray(errors, np.float64), np.asarray(base_errors, np.float64)
    if errors.shape != base.shape:
        raise ValueError(f"{errors.shape[0]} vs {base.shape[0]} utterances: not paired")
    if base.sum() == 0:
        raise ValueError("the baseline makes no errors: a relative change is undefined")
    idx = resample_indices(len(errors), resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = 100 * (errors[idx].sum(1) / base[idx].sum(1) - 1)
    # a draw in which the baseline makes no error has no relative change (x / 0): left out like 0 / 0,
    # not kept as +inf (it made the upper bound infinite when a few utterances hold every baseline error)
    samples[~np.isfinite(samples)] = np.nan
    return Interval(float(100 * (errors.sum() / base.sum() - 1)), *percentile_bounds(samples, level), len(errors))


def align(ids: np.ndarray, base_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in each) of the utterances both hold, in the baseline's order. ValueError when
    an id repeats (the pairing would be ambiguous)."""
    if len(set(ids)) != len(ids) or len(set(base_ids)) != len(base_ids):
        raise ValueError("utterance ids repeat within a record: cannot pair")
    where = {u: i for i, u in enumerate(ids)}
    both = [(where[u], j) for j, u in enumerate(base_ids) if u in where]
    if not both:
        raise ValueError("no utterance in common")
    a, b = zip(*both)
    return np.asarray(a), np.asarray(b)
