"""SpecAugment (frequency and time masks) on normalised features, in place on a batch copy."""

from __future__ import annotations

import torch

from .config import SpecAugmentConfig  # declared beside TrainConfig (torch-free: the CLI reads its fields)

__all__ = ["SpecAugmentConfig", "spec_augment"]


def spec_augment(feats: torch.Tensor, lens: torch.Tensor, cfg: SpecAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    feats = feats.clone()
    b, _, n_mels = feats.shape
    for i in range(b):
        t_len = int(lens[i])
        for _ in range(cfg.freq_masks):
            w = int(torch.randint(0, cfg.freq_width + 1, (1,), generator=gen))
            f0 = int(torch.randint(0, max(1, n_mels - w), (1,), generator=gen))
            feats[i, :, f0 : f0 + w] = 0.0
        max_w = max(1, int(t_len * cfg.time_width_ratio))
        for _ in range(cfg.time_masks):
            w = int(torch.randint(0, max_w + 1, (1,), generator=gen))
            t0 = int(torch.randint(0, max(1, t_len - w), (1,), generator=gen))
            feats[i, t0 : t0 + w, :] = 0.0
    return feats
