"""Packaged TOML configs (kdasr/configs/*.toml) -> ModelConfig / TrainConfig, with CLI overrides.

A config file is user input: a syntax error names the file, line and column; an unknown section
or key, or a value of the wrong type, names the file, the section and the key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from ..errors import KdasrError
from ..models.config import ModelConfig
from .config import TrainConfig
from .specaugment import SpecAugmentConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
SECTIONS = {"model": ModelConfig, "train": TrainConfig}


def _parse_toml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KdasrError(f"{path}: cannot read config ({e})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's message ends "(at line L, column C)"; put the place first, compiler style
        msg = str(e)
        if m := re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg):
            raise KdasrError(f"{path}:{m[1]}:{m[2]}: invalid TOML: {msg[: m.start()]}") from None
        raise KdasrError(f"{path}: invalid TOML: {msg}") from None


def _kind_ok(value: object, default: object) -> bool:
    """Is `value` (from TOML) usable where the dataclass default is `default`?"""
    if default is None:
        return isinstance(value, (int, float)) and not isinstance(value, bool)  # the optional numbers
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, list)
    return type(value) is type(default)


def _section(path: Path, data: dict, name: str, cls: type, fixed: dict) -> dict:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise KdasrError(f"{path}: '{name}' must be a table ([{name}]), got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in fixed}
    out = {}
    for key, value in table.items():
        if key not in fields:
            raise KdasrError(f"{path}: [{name}] unknown key '{key}' (known: {', '.join(fields)})")
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, SpecAugmentConfig):
            if not isinstance(value, dict):
                raise KdasrError(f"{path}: [{name}] {key} must be a table ([{name}.{key}])")
            out[key] = SpecAugmentConfig(**_section(path, {key: value}, key, SpecAugmentConfig, {}))
            continue
        if not _kind_ok(value, default):
            want = "a list" if isinstance(default, tuple) else type(default).__name__
            raise KdasrError(f"{path}: [{name}] {key} = {value!r}: expected {want}")
        out[key] = tuple(value) if isinstance(default, tuple) else value
    return out


def load_preset(name_or_path: str, vocab_size: int, **train_overrides) -> tuple[ModelConfig, TrainConfig]:
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise KdasrError(f"config {name_or_path!r} not found (packaged: {known}; or give a .toml path)")
    data = _parse_toml(path)
    if unknown := sorted(set(data) - set(SECTIONS)):
        raise KdasrError(f"{path}: unknown section [{unknown[0]}] (known: {', '.join(SECTIONS)})")
    model = ModelConfig(vocab_size=vocab_size, **_section(path, data, "model", ModelConfig, {"vocab_size": 0}))
    train = TrainConfig(**_section(path, data, "train", TrainConfig, {}))
    return model, dataclasses.replace(train, **{k: v for k, v in train_overrides.items() if v is not None})
