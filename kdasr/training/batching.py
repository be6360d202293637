"""Length-bucketed batches under a padded-frame budget, reshuffled deterministically per epoch."""

from __future__ import annotations

import numpy as np


def bucket_batches(lengths: list[int], max_frames: int, seed: int, epoch: int, max_batch: int = 256) -> list[list[int]]:
    """Sort by length, cut into batches whose padded size B·max(T) stays under `max_frames`,
    then shuffle the batch order with a (seed, epoch) generator. The same (seed, epoch) always
    gives the same batches, which is what lets a resumed run skip exactly the batches done."""
    rng = np.random.default_rng([seed, epoch])
    # a little noise in the sort key so batch composition varies between epochs
    keys = np.asarray(lengths, dtype=np.float64) * rng.uniform(0.95, 1.05, len(lengths))
    order = np.argsort(keys, kind="stable")
    batches, current, longest = [], [], 0
    for idx in order:
        n = lengths[idx]
        if current and (max(longest, n) * (len(current) + 1) > max_frames or len(current) >= max_batch):
            batches.append(current)
            current, longest = [], 0
        current.append(int(idx))
        longest = max(longest, n)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches
