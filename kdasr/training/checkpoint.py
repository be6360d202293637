"""Checkpoints: one torch file holding everything needed to resume or export, written atomically
and read without unpickling code (kdasr.models.torch_files)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError
from ..models.config import ModelConfig
from ..models.student import Seq2SeqStudent, build_model
from ..models.torch_files import load_torch_file, save_torch_file
from ..text import Tokenizer

REQUIRED = ("model_config", "model", "tokenizer_model")


def save_checkpoint(path: Path, payload: dict) -> None:
    save_torch_file(path, payload)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    payload = load_torch_file(path, "kdasr checkpoint")
    for key in REQUIRED:
        if key not in payload:
            raise ModelError(f"{path}: not a kdasr checkpoint (no '{key}')")
    if not isinstance(payload["model_config"], dict) or not isinstance(payload["model"], dict):
        raise ModelError(f"{path}: not a kdasr checkpoint ('model_config' and 'model' must be dicts)")
    return payload


def average_checkpoints(paths: list[Path]) -> dict:
    """Average model weights of several checkpoints (the last one's other fields are kept)."""
    payloads = [load_checkpoint(p) for p in paths]
    avg = payloads[-1]
    state = {k: v.clone().float() if v.is_floating_point() else v for k, v in avg["model"].items()}
    for path, p in zip(paths[:-1], payloads[:-1]):
        if {k: tuple(v.shape) for k, v in p["model"].items()} != {k: tuple(v.shape) for k, v in state.items()}:
            raise ModelError(f"{path}: cannot average with {paths[-1]}: the models have different architectures")
        for k, v in p["model"].items():
            if v.is_floating_point():
                state[k] += v.float()
    for k, v in state.items():
        if v.is_floating_point():
            state[k] = v / len(payloads)
    avg["model"] = state
    return avg


def student_from_checkpoint(payload: dict, name: object) -> Seq2SeqStudent:
    """The student a checkpoint describes, its weights loaded; ModelError when they do not fit."""
    try:
        model = build_model(ModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ModelError(f"{name}: the checkpoint's weights do not fit its model_config ({first})") from None
    return model


# settings a resumed run may change: loss weights, not the shapes of the weights
RESUMABLE_CHANGES = frozenset({"ctc_weight"})


def check_resumable(
    path: Path, payload: dict, cfg: ModelConfig, tok: Tokenizer, config_name: str | None = None
) -> None:
    """Refuse, in one line naming the settings that differ, to resume `path` with another
    architecture or tokenizer than it was trained with (today's --config / --tokenizer)."""
    try:
        saved = ModelConfig.from_dict(payload["model_config"]).to_dict()
    except TypeError as e:
        raise ModelError(f"{path}: not a kdasr checkpoint (bad model_config: {e})") from None
    now = cfg.to_dict()
    diffs = [f"{k} {saved[k]!r} vs {now[k]!r}" for k in now if k not in RESUMABLE_CHANGES and saved[k] != now[k]]
    if diffs:
        shown = ", ".join(diffs[:6]) + (f" and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise ModelError(
            f"{path}: cannot resume with {f'--config {config_name}' if config_name else 'this model config'}: "
            "the checkpoint's architecture differs "
            f"(checkpoint vs now: {shown}); resume with the config it was trained with, or start over "
            "with --no-resume or another --out"
        )
    src = Tokenizer.from_bytes(payload["tokenizer_model"], str(path))
    if any(src.id_to_piece(i) != tok.id_to_piece(i) for i in range(tok.vocab_size)):  # vocab size compared above
        raise ModelError(f"{path}: cannot resume with {tok.path}: the checkpoint was trained with another tokenizer")
