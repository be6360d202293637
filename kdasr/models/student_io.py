"""The one way kdasr loads a trained student: from a checkpoint (.pt), several checkpoints
(weights averaged), or an exported model dir (weights read back from its ONNX graphs).

Training (`--init-from`, `--branch-from`, learning curves), export and the torch reference engine
all call `load_student`, so a student is rebuilt, checked and described the same way everywhere.
Checkpoints are read without unpickling code (kdasr.models.torch_files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..text import Tokenizer
from .config import ModelConfig
from .student import Seq2SeqStudent, build_model
from .torch_files import load_torch_file

REQUIRED = ("model_config", "model", "tokenizer_model")


@dataclass
class LoadedStudent:
    model: Seq2SeqStudent  # in eval mode
    tokenizer: Tokenizer
    history: dict  # its training summary (what model.json's "training" holds): data, KD, steps, ...
    checkpoint: dict | None  # the checkpoint payload (averaged weights for several); None for a model dir


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


def checkpoint_history(payload: dict) -> dict:
    """A checkpoint's training summary with where it stands: steps, epochs, training seconds."""
    return {
        **payload.get("summary", {}),
        "steps": payload.get("step"),
        "epochs": payload.get("epoch"),
        "train_seconds": round(payload.get("elapsed", 0.0)),
    }


def load_student(source: Path | Sequence[Path]) -> LoadedStudent:
    """A checkpoint file, a list of checkpoint files (averaged), or an exported model dir."""
    sources = [Path(source)] if isinstance(source, str | Path) else [Path(s) for s in source]
    if not sources:
        raise ModelError("no checkpoint given")
    if len(sources) == 1 and sources[0].is_dir():
        from .onnx_weights import load_student_from_model_dir

        model, tok, spec = load_student_from_model_dir(sources[0])
        return LoadedStudent(model, tok, dict(spec.training), None)
    if dirs := [s for s in sources if s.is_dir()]:
        raise ModelError(f"{dirs[0]}: a model dir cannot be averaged with checkpoints (give .pt files)")
    payload = average_checkpoints(sources) if len(sources) > 1 else load_checkpoint(sources[0])
    name = ", ".join(map(str, sources))
    model = student_from_checkpoint(payload, name)
    tok = Tokenizer.from_bytes(payload["tokenizer_model"], name)
    return LoadedStudent(model.eval(), tok, checkpoint_history(payload), payload)
