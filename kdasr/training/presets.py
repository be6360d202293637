"""Packaged TOML configs (kdasr/configs/*.toml) -> a Preset (ModelConfig + TrainConfig), read at
the entry point (the CLI) and passed in: no library module reads a config by name.

A config file is user input: a syntax error names the file, line and column; an unknown section
or key, or a value of the wrong type, names the file, the section and the key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..errors import KdasrError
from ..models.config import ModelConfig
from .config import SpecAugmentConfig, TrainConfig

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
    if isinstance(default, Enum):
        return isinstance(value, str)  # its value (e.g. kd = "bert"), checked by the dataclass
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


@dataclass(frozen=True)
class Preset:
    """A training config as read: its name (as given: packaged name or .toml path), the model
    (vocab_size 0 until the tokenizer is known) and the training settings."""

    name: str
    model: ModelConfig
    train: TrainConfig

    def model_config(self, vocab_size: int) -> ModelConfig:
        return dataclasses.replace(self.model, vocab_size=vocab_size)


def read_preset(name_or_path: str) -> Preset:
    """The packaged config `name_or_path` (no suffix) or the .toml file it names."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise KdasrError(f"config {name_or_path!r} not found (packaged: {known}; or give a .toml path)")
    data = _parse_toml(path)
    if unknown := sorted(set(data) - set(SECTIONS)):
        raise KdasrError(f"{path}: unknown section [{unknown[0]}] (known: {', '.join(SECTIONS)})")
    model = ModelConfig(vocab_size=0, **_section(path, data, "model", ModelConfig, {"vocab_size": 0}))
    return Preset(name_or_path, model, TrainConfig(**_section(path, data, "train", TrainConfig, {})))


def load_preset(name_or_path: str, vocab_size: int) -> tuple[ModelConfig, TrainConfig]:
    """read_preset's model (for `vocab_size`) and training settings."""
    preset = read_preset(name_or_path)
    return preset.model_config(vocab_size), preset.train
