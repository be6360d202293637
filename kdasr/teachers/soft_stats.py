"""How flat are the soft labels, and which label smoothing is as flat (issue 28: the smoothing
control, CE with label smoothing raised to match the soft labels' mean entropy).

The entropies are those of the targets the trainer builds (kdasr/training/losses.py), not of the
teacher alone:
  soft (kd_loss)            q = (1 − σ)·p + σ·u   p: a stored top-K row as the trainer reads it (float16
                                                   -> float32, not renormalised), u: uniform over all V
                                                   units (the top-K units included)
  hard (smoothed_token_ce)  t = (1 − ε)·onehot + ε·u   u again over all V, the true unit included
so t's true unit gets 1 − ε + ε/V and each other unit ε/V. H(t) rises from 0 at ε = 0 to ln V at
ε = 1; `entropy_matched_smoothing` inverts it by bisection. Torch-free (numpy)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import KdasrError
from .storage import read_meta


def _xlogx(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)  # 0·ln 0 = 0


def smoothed_onehot_entropy(eps: float, vocab_size: int) -> float:
    """H((1 − ε)·onehot + ε·uniform over `vocab_size` units), in nats."""
    v = vocab_size
    return float(-_xlogx(1.0 - eps + eps / v) - (v - 1) * _xlogx(eps / v))


def entropy_matched_smoothing(target_entropy: float, vocab_size: int, tol: float = 1e-12) -> float:
    """The label smoothing ε in [0, 1] whose smoothed one-hot target has entropy `target_entropy`
    (nats) over `vocab_size` units; KdasrError when no ε has it (above ln V, or negative)."""
    if vocab_size < 2:
        raise KdasrError(f"vocabulary size {vocab_size}: needs at least 2 units")
    top = math.log(vocab_size)
    if not 0.0 <= target_entropy <= top + 1e-9:  # also NaN
        raise KdasrError(f"entropy {target_entropy:.6g} nats: no label smoothing reaches it over {vocab_size} units "
                         f"(possible: 0 to ln {vocab_size} = {top:.6g})")
    lo, hi = 0.0, 1.0  # H is increasing in ε on [0, 1]
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if smoothed_onehot_entropy(mid, vocab_size) < target_entropy:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def soft_target(ids: np.ndarray, probs: np.ndarray, sigma: float, vocab_size: int) -> np.ndarray:
    """The dense soft targets [N, V] of rows (ids, probs) [N, K] as kd_loss weighs the student's
    log-probabilities: (1 − σ)·p on the top-K units + σ/V on every unit (for checks on small V)."""
    q = np.full((len(ids), vocab_size), sigma / vocab_size, dtype=np.float64)
    np.add.at(q, (np.arange(len(ids))[:, None], ids), (1.0 - sigma) * probs.astype(np.float64))
    return q


def soft_target_entropy(probs: np.ndarray, sigma: float, vocab_size: int) -> np.ndarray:
    """Per row, the entropy of soft_target (closed form: the V − K units off the top K all get σ/V)."""
    k = probs.shape[1]
    q = (1.0 - sigma) * probs.astype(np.float64) + sigma / vocab_size
    return -_xlogx(q).sum(axis=1) - (vocab_size - k) * _xlogx(sigma / vocab_size)


@dataclass(frozen=True)
class SoftStats:
    folder: str
    teacher: str
    mode: str
    top_k: int
    temperature: float
    vocab_size: int
    kd_smoothing: float  # σ
    utterances: int
    tokens: int
    target_entropy: float  # mean over tokens of H(q), nats
    max_entropy: float  # ln V
    teacher_entropy: float  # mean H(p) of the stored top-K rows alone (σ = 0), nats
    teacher_max_entropy: float  # ln K
    top1: float  # mean of the top-K rows' largest probability
    target_top1: float  # the same in q
    prob_sum: float  # mean row sum as stored (float16 rounding: the trainer does not renormalise)
    matched_label_smoothing: float  # ε with H((1 − ε)·onehot + ε·u) = target_entropy

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        return "\n".join([
            f"soft labels {self.folder}: {self.teacher} ({self.mode}), K = {self.top_k}, T = {self.temperature:g}, "
            f"{self.tokens} tokens of {self.utterances} utterances",
            f"soft target (1 − σ)·top-K + σ·uniform over V = {self.vocab_size}, σ = {self.kd_smoothing:g}:",
            f"  mean entropy {self.target_entropy:.4f} nats of a possible ln V = {self.max_entropy:.4f}",
            f"  mean top-1 probability {self.target_top1:.4f}",
            f"teacher top-K rows alone: mean entropy {self.teacher_entropy:.4f} nats of a possible "
            f"ln K = {self.teacher_max_entropy:.4f}; mean top-1 probability {self.top1:.4f}; "
            f"mean row sum {self.prob_sum:.5f}",
            f"entropy-matched label smoothing: ε = {self.matched_label_smoothing:.4f} "
            f"(H((1 − ε)·one-hot + ε·uniform) = {self.target_entropy:.4f} nats)",
        ])


def soft_stats(folder: Path, vocab_size: int | None = None, kd_smoothing: float = 0.1) -> SoftStats:
    """Statistics over every token row of a soft-label folder (`kdasr teacher soft-labels`), with
    the targets built as the trainer builds them for `--kd-smoothing kd_smoothing` and a student of
    `vocab_size` units (default: the folder's tokenizer's, meta.json)."""
    folder = Path(folder)
    meta = read_meta(folder)
    v = meta.vocab_size if vocab_size is None else vocab_size
    if not 0.0 <= kd_smoothing < 1.0:
        raise KdasrError(f"--kd-smoothing {kd_smoothing}: must be at least 0 and below 1")
    if v <= meta.top_k:
        raise KdasrError(f"--vocab-size {v}: must exceed the soft labels' K = {meta.top_k}")
    n_utts = n_tokens = 0
    sums = dict.fromkeys(("target", "teacher", "top1", "target_top1", "prob_sum"), 0.0)
    for shard in sorted(folder.glob("shard-*.npz")):
        try:
            with np.load(shard) as z:
                ids, probs, offsets = z["ids"], z["probs"].astype(np.float32), z["offsets"]  # as the trainer reads
        except (OSError, ValueError, KeyError) as e:
            raise KdasrError(f"{shard}: not a soft-label shard ({e})") from None
        if ids.shape != probs.shape or ids.ndim != 2 or ids.shape[1] != meta.top_k:
            raise KdasrError(f"{shard}: ids {ids.shape} and probs {probs.shape} are not [N, K = {meta.top_k}] rows")
        if ids.size and (ids.min() < 0 or ids.max() >= v):
            raise KdasrError(f"{shard}: unit id {int(ids.max())} outside a vocabulary of {v} (--vocab-size)")
        n_utts += len(offsets) - 1
        n_tokens += len(probs)
        sums["target"] += float(soft_target_entropy(probs, kd_smoothing, v).sum())
        sums["teacher"] += float(soft_target_entropy(probs, 0.0, meta.top_k).sum())
        top = probs.max(axis=1, initial=0.0).astype(np.float64)
        sums["top1"] += float(top.sum())
        sums["target_top1"] += float(((1 - kd_smoothing) * top + kd_smoothing / v).sum())
        sums["prob_sum"] += float(probs.sum(axis=1, dtype=np.float64).sum())
    if not n_tokens:
        raise KdasrError(f"{folder}: no soft-label rows (no shard-*.npz with tokens)")
    mean = {k: s / n_tokens for k, s in sums.items()}
    return SoftStats(
        folder=str(folder), teacher=meta.teacher, mode=meta.mode, top_k=meta.top_k, temperature=meta.temperature,
        vocab_size=v, kd_smoothing=kd_smoothing, utterances=n_utts, tokens=n_tokens,
        target_entropy=mean["target"], max_entropy=math.log(v), teacher_entropy=mean["teacher"],
        teacher_max_entropy=math.log(meta.top_k), top1=mean["top1"], target_top1=mean["target_top1"],
        prob_sum=mean["prob_sum"],
        matched_label_smoothing=entropy_matched_smoothing(min(mean["target"], math.log(v)), v),
    )
