"""Training settings: frozen dataclasses (torch-free), read from a preset, overridden by the request."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..teachers.kd_mode import KdMode


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width_ratio: float = 0.05  # each time mask covers at most this share of the utterance


@dataclass(frozen=True)
class TrainConfig:
    max_frames: int = 24000  # padded feature frames (10 ms) per batch
    lr: float = 1.5e-3  # peak learning rate (Noam schedule)
    pretrained_lr_scale: float = 1.0  # lr factor of pretrained weights that train (whisper layers)
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
    # knowledge distillation (DESIGN.md §4): none, lm, bert (utterance), bert-context or count
    kd: KdMode = KdMode.NONE
    kd_weight: float = 0.0  # λ; the recipe fills the per-mode default (0.1 utterance/LM, 0.3 context)
    kd_smoothing: float = 0.1  # soft target = (1 − σ)·top-K + σ·uniform
    # frozen pretrained encoders (whisper_trainable_layers >= 0): compute the frozen part once per
    # utterance, cache it (training/encoder_cache.py) and train from the cache; masks on its states
    encoder_cache: bool = False
    amp: str = "none"  # "bf16": autocast the forward pass (CPU or GPU)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kd", KdMode.parse(self.kd))  # also from a TOML string

    def to_dict(self) -> dict:
        """Plain values (the KD mode as its string), as checkpoints store it."""
        return {**dataclasses.asdict(self), "kd": self.kd.value}
