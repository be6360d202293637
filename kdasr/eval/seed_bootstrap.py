"""Systems trained with several seeds, compared on one evaluation set: WER mean ± sd over seeds, and
a bootstrap that resamples seeds and utterances together (numpy, seeded). Torch-free.

Each draw picks one multiset of utterances, shared by every system (so comparisons stay paired by
utterance), and, independently per system, a multiset of that system's seeds (with replacement).
A system's WER in a draw is its errors summed over the drawn seeds × drawn utterances over the
reference words of the same. Intervals are percentiles of the draws, so they count the spread
between training runs as well as the sampling of test sentences. The utterance draws are those of
kdasr.eval.bootstrap at the same seed: with every seed of a system alike, its interval is the
utterances-only one. With few seeds the seed part is a coarse estimate (three seeds resampled show
at most three distinct runs), so read it as a lower bound on training variance."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import KdasrError
from .bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, Interval, percentile_bounds, resample_indices

METHOD = ("bootstrap over seeds and utterances together ({n} draws, numpy seed {seed}; each draw resamples the "
          "utterances once for all systems and each system's seeds on their own, with replacement; percentile "
          "{level:g} % interval; pooled rate = errors / reference words over drawn seeds × drawn utterances)")
CHUNK_CELLS = 4_000_000  # draws × utterances held at once (float64: 32 MB)


@dataclass(frozen=True)
class SeedRecord:
    """One system's per-utterance counts from one training seed (one result record)."""

    system: str
    seed: str  # label as given, e.g. "1"
    ids: Sequence[str]
    errors: np.ndarray
    words: np.ndarray  # reference words per utterance
    source: str  # where it came from (a file), for error messages


@dataclass(frozen=True)
class SeedRuns:
    """A system's seeds on the set's utterances in one shared order."""

    system: str
    seeds: tuple[str, ...]
    errors: np.ndarray  # (seeds, utterances)
    words: np.ndarray  # (utterances,)


@dataclass(frozen=True)
class SeedSummary:
    mean: float  # of the per-seed WERs, %
    sd: float | None  # ddof=1; None with one seed
    per_seed: dict[str, float]


@dataclass(frozen=True)
class Pair:
    """A against B: relative WER change in % = 100 (WER_A − WER_B) / WER_B, with its interval, and
    the share of draws in which A's WER is below B's."""

    a: str
    b: str
    change: Interval | None  # None when B makes no errors (or its WER is undefined)
    p_a_better: float

    @property
    def excludes_zero(self) -> bool:
        return self.change is not None and not self.change.contains(0.0)


@dataclass(frozen=True)
class SeedBootstrap:
    wer: dict[str, Interval]  # system -> pooled WER % over its seeds, with interval
    pairs: dict[tuple[str, str], Pair]  # every ordered pair (a, b), a != b
    resamples: int
    seed: int
    level: float


def _name(r: SeedRecord) -> str:
    return f"{r.system} seed {r.seed} ({r.source})"


def stack(records: Sequence[SeedRecord]) -> dict[str, SeedRuns]:
    """Records of one set grouped per system, aligned by utterance id in the first record's order.
    KdasrError naming system, seed and file when an utterance id repeats, when a record lacks
    utterances the others have (or has extra ones), when a seed comes twice, or when the same
    utterance has different reference word counts (not the same references)."""
    if not records:
        raise KdasrError("no records to compare")
    for r in records:
        if len(r.ids) != len(r.errors) or len(r.ids) != len(r.words):
            raise KdasrError(f"{_name(r)}: per-utterance columns differ in length")
        if len(set(r.ids)) != len(r.ids):
            raise KdasrError(f"{_name(r)}: utterance ids repeat: cannot pair")
    first = records[0]
    order = list(first.ids)
    where = {u: i for i, u in enumerate(order)}
    words = np.asarray(first.words, np.int64)
    rows: dict[str, list[tuple[str, np.ndarray]]] = {}
    for r in records:
        ids = set(r.ids)
        missing = [u for u in order if u not in ids]
        extra = [u for u in r.ids if u not in where]
        if missing or extra:
            what = (f"lacks {len(missing)} of the {len(order)} utterances (e.g. {missing[0]!r})" if missing
                    else f"has {len(extra)} utterance(s) the others lack (e.g. {extra[0]!r})")
            raise KdasrError(f"{_name(r)}: {what} that {_name(first)} scored: every seed of every system must "
                             "score the same utterances")
        pos = np.asarray([where[u] for u in r.ids])
        errs, w = np.zeros(len(order), np.int64), np.zeros(len(order), np.int64)
        errs[pos], w[pos] = r.errors, r.words
        if not np.array_equal(w, words):
            u = order[int(np.flatnonzero(w != words)[0])]
            raise KdasrError(f"{_name(r)}: utterance {u!r} has {w[where[u]]} reference words, {words[where[u]]} in "
                             f"{_name(first)}: not the same references")
        seen = rows.setdefault(r.system, [])
        if any(s == r.seed for s, _ in seen):
            raise KdasrError(f"{_name(r)}: a second record of this system and seed")
        seen.append((r.seed, errs))
    return {s: SeedRuns(s, tuple(k for k, _ in v), np.stack([e for _, e in v]), words) for s, v in rows.items()}


def per_seed_wer(runs: SeedRuns) -> np.ndarray:
    total = runs.words.sum()
    return 100 * runs.errors.sum(1) / total if total else np.full(len(runs.seeds), np.nan)


def summary(runs: SeedRuns) -> SeedSummary:
    """WER mean ± sd (ddof=1) over seeds; sd None with a single seed."""
    w = per_seed_wer(runs)
    sd = float(np.std(w, ddof=1)) if len(w) > 1 else None
    return SeedSummary(float(w.mean()), sd, {s: float(x) for s, x in zip(runs.seeds, w)})


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each of 0..n-1 occurs per row of idx (draws × picks) -> (draws, n) float64."""
    rows = idx.shape[0]
    flat = (idx + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def _seed_rng(seed: int, system: str) -> np.random.Generator:
    # per system, from its name: a system's seed draws do not change when other systems come or go
    return np.random.default_rng([seed, zlib.crc32(system.encode("utf-8"))])


def _bounds(samples: np.ndarray, level: float) -> tuple[float, float]:
    # a draw without a defined value (no reference words, B without errors) is left out; none: no interval
    samples = np.where(np.isfinite(samples), samples, np.nan)
    return percentile_bounds(samples, level) if not np.isnan(samples).all() else (float("nan"), float("nan"))


def seed_bootstrap(runs: dict[str, SeedRuns], resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                   level: float = 95.0) -> SeedBootstrap:
    """Intervals for each system's WER and for the relative WER change of every ordered pair, from
    draws that resample seeds and utterances together (see the module's docstring)."""
    if not runs:
        raise KdasrError("no systems to compare")
    words = next(iter(runs.values())).words
    n = len(words)
    if n == 0:
        raise KdasrError("no utterances to resample")
    if any(len(r.words) != n for r in runs.values()):
        raise KdasrError("systems are not aligned on the same utterances (use stack)")
    utt = resample_indices(n, resamples, seed)  # the draws kdasr.eval.bootstrap makes at this seed
    seed_idx = {s: _seed_rng(seed, s).integers(0, len(r.seeds), size=(resamples, len(r.seeds)))
                for s, r in runs.items()}
    errs = {s: np.empty(resamples) for s in runs}
    total = np.empty(resamples)  # reference words of the drawn utterances (once, not per seed)
    step = max(1, CHUNK_CELLS // max(n, 1))
    for lo in range(0, resamples, step):
        hi = min(lo + step, resamples)
        cu = _counts(utt[lo:hi], n)  # (draws, utterances)
        total[lo:hi] = cu @ words
        for s, r in runs.items():
            per_seed = cu @ r.errors.T.astype(np.float64)  # (draws, seeds): errors of each seed on the draw
            errs[s][lo:hi] = (_counts(seed_idx[s][lo:hi], len(r.seeds)) * per_seed).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = {s: 100 * errs[s] / (len(r.seeds) * total) for s, r in runs.items()}
    point = {s: 100 * r.errors.sum() / (len(r.seeds) * words.sum()) if words.sum() else float("nan")
             for s, r in runs.items()}
    wer = {s: Interval(float(point[s]), *_bounds(draws[s], level), n) for s in runs}
    pairs = {}
    for a in runs:
        for b in runs:
            if a == b:
                continue
            change = None
            if point[b] > 0:
                with np.errstate(invalid="ignore", divide="ignore"):
                    # equal WERs are no change, also both at 0; A above a B of 0 has none defined (left out)
                    rel = np.where(draws[a] == draws[b], 0.0, 100 * (draws[a] - draws[b]) / draws[b])
                change = Interval(float(100 * (point[a] - point[b]) / point[b]), *_bounds(rel, level), n)
            pairs[(a, b)] = Pair(a, b, change, float(np.mean(draws[a] < draws[b])))
    return SeedBootstrap(wer, pairs, resamples, seed, level)
