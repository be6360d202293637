"""Checkpoints: one torch file holding everything needed to resume or export, written atomically
and read without unpickling code. Reading a file (load_checkpoint, average_checkpoints,
student_from_checkpoint) lives in kdasr.models.student_io, the one student loader; it is
re-exported here for the trainer's callers. This module adds what only training needs: the typed
training checkpoint (a dict only at the file boundary: to_dict to save, from_dict after reading;
the file's keys are unchanged), and the checks before a run resumes or branches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ModelError
from ..models.config import ModelConfig
from ..models.student_io import average_checkpoints, load_checkpoint, student_from_checkpoint
from ..models.torch_files import save_torch_file
from ..text import Tokenizer
from .config import TrainConfig

__all__ = [
    "TrainingCheckpoint", "average_checkpoints", "check_branchable", "check_resumable", "check_resume_settings",
    "load_checkpoint", "save_checkpoint", "student_from_checkpoint",
]

TRAINING_KEYS = ("optimizer", "step", "epoch", "batch_pos")  # what a run continues from beyond the weights


@dataclass
class TrainingCheckpoint:
    """What the trainer writes to last.pt, epoch-N.pt and snapshot-<M>min.pt, and resumes or branches from."""

    model_config: ModelConfig
    model: dict[str, torch.Tensor]
    tokenizer_model: bytes  # the sentencepiece model's bytes
    optimizer: dict
    step: int
    epoch: int
    batch_pos: int  # batches of `epoch` already done
    elapsed: float = 0.0  # training seconds (all resumed runs together)
    kind: str = ""  # "last", "epoch" or "snapshot" ("" in files that predate it)
    # the TrainConfig as plain values, as the writing version had it (an older one may lack later keys)
    train_config: dict = field(default_factory=dict)
    rng: torch.Tensor | None = None  # the main process's torch RNG (what older versions restore)
    rngs: list[dict] | None = None  # per process: torch, SpecAugment (and CUDA) RNG states
    world_size: int = 1
    summary: dict = field(default_factory=dict)  # the run's history: data, preset, KD, where it started

    def to_dict(self) -> dict:
        """The file's payload (keys and values as kdasr has always written them)."""
        return {
            "kind": self.kind,
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config,
            "model": self.model,
            "optimizer": self.optimizer,
            "step": self.step,
            "epoch": self.epoch,
            "batch_pos": self.batch_pos,
            "elapsed": self.elapsed,
            "rng": self.rng,
            "rngs": self.rngs,
            "world_size": self.world_size,
            "tokenizer_model": self.tokenizer_model,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, payload: dict, path: Path, action: str = "resume") -> TrainingCheckpoint:
        """A payload read by load_checkpoint; ModelError in one line when it cannot be continued
        (`action` "branch": the message says branching)."""
        try:
            model_config = ModelConfig.from_dict(payload["model_config"])
        except TypeError as e:
            raise ModelError(f"{path}: not a kdasr checkpoint (bad model_config: {e})") from None
        verb = "resume" if action == "resume" else "branch from it"
        for key in TRAINING_KEYS:
            if key not in payload:
                raise ModelError(f"{path}: cannot {verb}: it holds no '{key}' (not a training checkpoint)")
        return cls(
            model_config=model_config,
            model=payload["model"],
            tokenizer_model=payload["tokenizer_model"],
            optimizer=payload["optimizer"],
            step=payload["step"],
            epoch=payload["epoch"],
            batch_pos=payload["batch_pos"],
            elapsed=payload.get("elapsed", 0.0),
            kind=payload.get("kind", ""),
            train_config=payload.get("train_config") or {},
            rng=payload.get("rng"),
            rngs=payload.get("rngs"),
            world_size=payload.get("world_size", 1),
            summary=payload.get("summary") or {},
        )

    @classmethod
    def load(cls, path: Path, action: str = "resume") -> TrainingCheckpoint:
        return cls.from_dict(load_checkpoint(path), path, action)


def save_checkpoint(path: Path, payload: dict | TrainingCheckpoint) -> None:
    save_torch_file(path, payload.to_dict() if isinstance(payload, TrainingCheckpoint) else payload)


# settings a resumed run may change: loss weights, not the shapes of the weights
RESUMABLE_CHANGES = frozenset({"ctc_weight"})
# training settings that define a run's trajectory (schedule, data order, augmentation, RNG): a
# branch keeps them, so that only the loss (kd, kd_weight, kd_smoothing) and the budget differ
BRANCH_PROTOCOL = (
    "lr", "warmup_steps", "max_frames", "seed", "grad_clip", "label_smoothing", "specaug_start_step", "specaug",
)

# training settings a resumed run keeps (a run's identity in a seeded comparison): another seed would
# change the data order mid-run, another smoothing the loss the run is named for
RESUME_PROTOCOL = ("seed", "label_smoothing", "kd_smoothing")


def check_resumable(
    path: Path,
    ck: TrainingCheckpoint,
    cfg: ModelConfig,
    tok: Tokenizer,
    config_name: str | None = None,
    action: str = "resume",
) -> None:
    """Refuse, in one line naming the settings that differ, to resume (action="branch": to branch
    from) `path` with another architecture or tokenizer than it was trained with."""
    verb = "resume" if action == "resume" else "branch from it"
    saved = ck.model_config.to_dict()
    now = cfg.to_dict()
    diffs = [f"{k} {saved[k]!r} vs {now[k]!r}" for k in now if k not in RESUMABLE_CHANGES and saved[k] != now[k]]
    if diffs:
        shown = ", ".join(diffs[:6]) + (f" and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        advice = (
            "resume with the config it was trained with, or start over with --no-resume or another --out"
            if action == "resume"
            else "branch with the config it was trained with"
        )
        raise ModelError(
            f"{path}: cannot {verb} with {f'--config {config_name}' if config_name else 'this model config'}: "
            f"the checkpoint's architecture differs (checkpoint vs now: {shown}); {advice}"
        )
    src = Tokenizer.from_bytes(ck.tokenizer_model, str(path))
    if any(src.id_to_piece(i) != tok.id_to_piece(i) for i in range(tok.vocab_size)):  # vocab size compared above
        raise ModelError(f"{path}: cannot {verb} with {tok.path}: the checkpoint was trained with another tokenizer")


def check_branchable(path: Path, ck: TrainingCheckpoint, train_cfg: TrainConfig) -> None:
    """Refuse, in one line, a branch whose schedule, data order or augmentation would differ from
    the run it branches from (`train_cfg`: this command's)."""
    saved, now = ck.train_config, train_cfg.to_dict()
    differ = [k for k in BRANCH_PROTOCOL if k in saved and saved[k] != now[k]]
    diffs = [f"{k} {saved[k]!r} vs {now[k]!r}" for k in differ]
    if diffs:
        raise ModelError(
            f"{path}: cannot branch from it: its training settings differ (checkpoint vs now: {', '.join(diffs)}); "
            "a branch changes only the loss (--kd, --soft-labels, --kd-weight) and the budget"
        )


def check_resume_settings(path: Path, ck: TrainingCheckpoint, train_cfg: TrainConfig) -> None:
    """Refuse, in one line, to resume `path` with another seed or smoothing than it was trained with
    (`train_cfg`: this command's; keys an older checkpoint lacks are not compared)."""
    saved, now = ck.train_config, train_cfg.to_dict()
    diffs = [f"{k} {saved[k]!r} vs {now[k]!r}" for k in RESUME_PROTOCOL if k in saved and saved[k] != now[k]]
    if diffs:
        flags = " ".join(f"--{k.replace('_', '-')} {saved[k]}" for k in RESUME_PROTOCOL if k in saved)
        raise ModelError(
            f"{path}: cannot resume: its training settings differ (checkpoint vs now: {', '.join(diffs)}); "
            f"resume with {flags}, or start over with --no-resume or another --out"
        )
