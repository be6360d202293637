"""Checkpoints: one torch file holding everything needed to resume or export, written atomically
and read without unpickling code. Reading (load_checkpoint, average_checkpoints,
student_from_checkpoint) lives in kdasr.models.student_io, the one student loader; it is
re-exported here for the trainer's callers. This module adds what only training needs: saving,
and the checks before a run resumes or branches."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..models.config import ModelConfig
from ..models.student_io import average_checkpoints, load_checkpoint, student_from_checkpoint
from ..models.torch_files import save_torch_file
from ..text import Tokenizer

__all__ = [
    "average_checkpoints", "check_branchable", "check_resumable", "load_checkpoint", "save_checkpoint",
    "student_from_checkpoint",
]


def save_checkpoint(path: Path, payload: dict) -> None:
    save_torch_file(path, payload)


# settings a resumed run may change: loss weights, not the shapes of the weights
RESUMABLE_CHANGES = frozenset({"ctc_weight"})
# training settings that define a run's trajectory (schedule, data order, augmentation, RNG): a
# branch keeps them, so that only the loss (kd, kd_weight, kd_smoothing) and the budget differ
BRANCH_PROTOCOL = (
    "lr", "warmup_steps", "max_frames", "seed", "grad_clip", "label_smoothing", "specaug_start_step", "specaug",
)


def check_resumable(
    path: Path,
    payload: dict,
    cfg: ModelConfig,
    tok: Tokenizer,
    config_name: str | None = None,
    action: str = "resume",
) -> None:
    """Refuse, in one line naming the settings that differ, to resume (action="branch": to branch
    from) `path` with another architecture or tokenizer than it was trained with."""
    verb = "resume" if action == "resume" else "branch from it"
    try:
        saved = ModelConfig.from_dict(payload["model_config"]).to_dict()
    except TypeError as e:
        raise ModelError(f"{path}: not a kdasr checkpoint (bad model_config: {e})") from None
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
    src = Tokenizer.from_bytes(payload["tokenizer_model"], str(path))
    if any(src.id_to_piece(i) != tok.id_to_piece(i) for i in range(tok.vocab_size)):  # vocab size compared above
        raise ModelError(f"{path}: cannot {verb} with {tok.path}: the checkpoint was trained with another tokenizer")


def check_branchable(path: Path, payload: dict, train_cfg: dict) -> None:
    """Refuse, in one line, a branch whose schedule, data order or augmentation would differ from
    the run it branches from (`train_cfg`: this command's TrainConfig as a dict)."""
    for key in ("optimizer", "step", "epoch", "batch_pos"):
        if key not in payload:
            raise ModelError(f"{path}: cannot branch from it: it holds no '{key}' (not a training checkpoint)")
    saved = payload.get("train_config") or {}
    differ = [k for k in BRANCH_PROTOCOL if k in saved and saved[k] != train_cfg[k]]
    diffs = [f"{k} {saved[k]!r} vs {train_cfg[k]!r}" for k in differ]
    if diffs:
        raise ModelError(
            f"{path}: cannot branch from it: its training settings differ (checkpoint vs now: {', '.join(diffs)}); "
            "a branch changes only the loss (--kd, --soft-labels, --kd-weight) and the budget"
        )
