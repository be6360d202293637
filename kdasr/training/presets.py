"""Packaged TOML configs (kdasr/configs/*.toml) -> ModelConfig / TrainConfig, with CLI overrides."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from ..errors import KdasrError
from ..models.config import ModelConfig
from .config import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_preset(name_or_path: str, vocab_size: int, **train_overrides) -> tuple[ModelConfig, TrainConfig]:
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise KdasrError(f"config {name_or_path!r} not found (packaged: {known}; or give a .toml path)")
    data = tomllib.loads(path.read_text())
    try:
        model = ModelConfig(vocab_size=vocab_size, **data.get("model", {}))
        train = TrainConfig(**data.get("train", {}))
    except TypeError as e:
        raise KdasrError(f"{path}: {e}") from e
    return model, dataclasses.replace(train, **{k: v for k, v in train_overrides.items() if v is not None})
