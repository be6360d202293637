"""Checkpoints: one torch file holding everything needed to resume or export, written atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError
from ..io_utils import atomic_open


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ModelError(f"{path}: not a kdasr checkpoint ({e})") from e
    for key in ("model_config", "model", "tokenizer_model"):
        if key not in payload:
            raise ModelError(f"{path}: checkpoint lacks '{key}'")
    return payload


def average_checkpoints(paths: list[Path]) -> dict:
    """Average model weights of several checkpoints (the last one's other fields are kept)."""
    payloads = [load_checkpoint(p) for p in paths]
    avg = payloads[-1]
    state = {k: v.clone().float() if v.is_floating_point() else v for k, v in avg["model"].items()}
    for p in payloads[:-1]:
        for k, v in p["model"].items():
            if v.is_floating_point():
                state[k] += v.float()
    for k, v in state.items():
        if v.is_floating_point():
            state[k] = v / len(payloads)
    avg["model"] = state
    return avg
