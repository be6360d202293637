"""Training options: one frozen dataclass built at the entry point and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

from .specaugment import SpecAugmentConfig


@dataclass(frozen=True)
class TrainConfig:
    max_frames: int = 24000  # padded feature frames (10 ms) per batch
    lr: float = 1.5e-3  # peak learning rate (Noam schedule)
    warmup_steps: int = 600
    epochs: int = 100
    max_minutes: float | None = None  # wall-clock budget; stops cleanly with a checkpoint
    max_steps: int | None = None
    grad_clip: float = 5.0
    label_smoothing: float = 0.1
    specaug_start_step: int = 1500  # masks hurt while the model has not found alignments yet
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    seed: int = 0
    log_every: int = 20
    checkpoint_minutes: float = 10.0
    snapshot_minutes: tuple[float, ...] = ()  # also keep snapshot-<m>min.pt when training time passes m
    keep_epochs: int = 5  # epoch checkpoints kept for averaging
    dev_utterances: int = 300  # dev subset decoded at each epoch end
    threads: int | None = None
    # knowledge distillation (DESIGN.md §4): "none", "lm", "bert" (utterance) or "bert-context"
    kd: str = "none"
    kd_weight: float = 0.0  # λ; the recipe fills the per-mode default (0.1 utterance/LM, 0.3 context)
    kd_smoothing: float = 0.1  # soft target = (1 − σ)·top-K + σ·uniform
    # frozen pretrained encoders (whisper_trainable_layers >= 0): compute the frozen part once per
    # utterance, cache it (training/encoder_cache.py) and train from the cache; masks on its states
    encoder_cache: bool = False
    amp: str = "none"  # "bf16": autocast the forward pass (CPU or GPU)
