"""Models by name: `-m demo-en`, `Transcriber("demo-en")`, `KDASR_MODEL=demo-en`.

A model reference is a directory (used as given) or the name of an installed model, looked up in
  1. the user's model dir: $KDASR_MODELS, else $XDG_CACHE_HOME/kdasr/models (~/.cache/kdasr/models),
     where `kdasr models add DIR` copies one's own exports;
  2. the models shipped inside the package (kdasr/shipped_models/, package data of the wheel; in a
     source checkout its entries are links to export/, so the model files exist once in git);
  3. in a source checkout, the other model dirs under export/.
The first of these that holds a directory of that name with a model.json wins. Plain file
operations only (no numpy, no onnxruntime): the CLI lists models without loading them."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .defaults import MODEL_DEFAULT
from .errors import ModelError

SHIPPED = Path(__file__).resolve().with_name("shipped_models")
CHECKOUT_EXPORT = Path(__file__).resolve().parents[1] / "export"


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    origin: str  # "user", "shipped" or "checkout"

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def user_models_dir() -> Path:
    """Where one's own models live ($KDASR_MODELS, else the XDG cache dir); may not exist yet."""
    env = os.environ.get("KDASR_MODELS")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "kdasr" / "models"


def _model_dirs(root: Path, origin: str) -> list[InstalledModel]:
    if not root.is_dir():
        return []
    return [InstalledModel(d.name, d, origin) for d in sorted(root.iterdir()) if (d / "model.json").is_file()]


def installed_models() -> list[InstalledModel]:
    """Every model found by name, first match of each name only, in lookup order."""
    seen: dict[str, InstalledModel] = {}
    for m in (_model_dirs(user_models_dir(), "user") + _model_dirs(SHIPPED, "shipped")
              + _model_dirs(CHECKOUT_EXPORT, "checkout")):
        seen.setdefault(m.name, m)
    return list(seen.values())


def resolve_model(ref: str | os.PathLike | None = None) -> Path:
    """The model directory `ref` names: a directory as given, else an installed model's name.
    None: $KDASR_MODEL, else the default model (defaults.MODEL_DEFAULT). ModelError if neither."""
    if ref is None or str(ref) == "":
        ref = os.environ.get("KDASR_MODEL") or MODEL_DEFAULT
    path = Path(ref).expanduser()
    if path.is_dir() or len(path.parts) != 1 or str(ref).startswith((".", "~")):
        return path  # a path (not a bare name): the model loader says what is wrong with it
    for m in installed_models():
        if m.name == str(ref):
            return m.path
    names = ", ".join(m.name for m in installed_models()) or "none"
    raise ModelError(f"{ref}: no such model directory, and no installed model of that name (installed: {names}; "
                     "`kdasr models` lists them, `kdasr models add DIR` installs your own)")


def add_model(src: Path, name: str | None = None, replace: bool = False) -> Path:
    """Copy the model dir `src` into the user's model dir as `name` (default: its folder name); the
    copy appears whole or not at all."""
    from .spec.modelspec import load_model_spec

    load_model_spec(src)  # a model dir, readable (ModelError otherwise)
    name = name or Path(src).resolve().name
    if not name or "/" in name or name.startswith("."):
        raise ModelError(f"{name!r} is not a usable model name")
    dest = user_models_dir() / name
    if dest.exists() and not replace:
        raise ModelError(f"{dest} exists (use --replace to overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
