"""The one way kdasr reads and writes torch files (checkpoints, LM teachers).

A `.pt` file is a pickle, and unpickling runs whatever code the file names, so a crafted
checkpoint could execute anything on `kdasr export evil.pt` or `kdasr train --init-from evil.pt`.
Every load here uses `torch.load(weights_only=True)`, which only rebuilds tensors and plain data
(dict, list, tuple, str, bytes, numbers, bool, None) and refuses anything else. To keep kdasr's own
files loadable that way, `save_torch_file` refuses a payload that holds anything else, at save
time, rather than letting a run write a checkpoint that cannot be resumed."""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path

import torch

from ..errors import ModelError
from ..io_utils import atomic_open

# exact types: subclasses (numpy.float64 is a float, defaultdict a dict) pickle as their own class
_PLAIN = (str, bytes, int, float, bool, type(None))
_MAPPINGS = (dict, OrderedDict)  # module state dicts are OrderedDicts


def _first_unsafe(obj: object, where: str = "payload") -> str | None:
    """Where the first value that `weights_only` loading would refuse sits, or None."""
    if isinstance(obj, (torch.Tensor, torch.Size)) or type(obj) in _PLAIN:
        return None
    if type(obj) in _MAPPINGS:
        for k, v in obj.items():
            if type(k) not in (str, int):
                return f"{where} key {k!r} ({type(k).__name__})"
            if bad := _first_unsafe(v, f"{where}[{k!r}]"):
                return bad
        return None
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            if bad := _first_unsafe(v, f"{where}[{i}]"):
                return bad
        return None
    return f"{where} ({type(obj).__module__}.{type(obj).__qualname__})"


def save_torch_file(path: Path, payload: dict) -> None:
    """Write `payload` atomically; it must hold only tensors and plain data (see module doc)."""
    if bad := _first_unsafe(payload):
        # a programming error, caught before any bytes are written
        raise TypeError(f"{path}: refusing to save {bad}: only tensors and plain data load with weights_only")
    try:
        with atomic_open(path, "wb") as f:
            torch.save(payload, f)
    except (OSError, RuntimeError) as e:
        # a full disk surfaces as OSError, or as torch's zip writer's RuntimeError about the short
        # write; atomic_open has removed the temp file, so the previous file at `path` is intact
        cause = e if isinstance(e, OSError) else e.__context__ if isinstance(e.__context__, OSError) else None
        reason = cause.strerror if cause is not None and cause.strerror else (str(e).splitlines() or [""])[0][:160]
        raise ModelError(f"cannot write {path}: {reason} (the file it would replace, if any, is unchanged)") from None


def load_torch_file(path: Path, what: str = "kdasr checkpoint") -> dict:
    """Load a torch file without running any code it may hold; one-line ModelError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {'is a directory, not a file' if path.is_dir() else f'{what} not found'}")
    try:
        # protocol 2 pickles b"" as a call of builtins.bytes, the one plain type not allowed by default
        with torch.serialization.safe_globals([bytes]):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refused an object; its long message names the global it met
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        raise ModelError(
            f"{path}: not a {what}: it holds objects other than tensors and plain data"
            f"{f' ({found.group(1)})' if found else ''}, which kdasr refuses to unpickle (they could run code)"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for truncated or foreign files
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ModelError(f"{path}: not a {what} (not a readable torch file: {first})") from None
    if not isinstance(payload, dict):
        raise ModelError(f"{path}: not a {what} (holds a {type(payload).__name__}, expected a dict)")
    return payload
