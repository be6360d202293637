"""Checks shared by the TOML files kdasr reads as experiment specs (kdasr/spec/protocol.py and its
[alternatives] table, kdasr/spec/alternatives.py): each raises KdasrError "WHERE: message", one line."""

from __future__ import annotations

import json

from ..errors import KdasrError


def fail(where: str, msg: str):
    raise KdasrError(f"{where}: {msg}")


def number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def table(where: str, d: dict, key: str, known: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    """d[key] as a table whose keys are all `known` and include `required`."""
    t = d.get(key, {})
    if not isinstance(t, dict):
        fail(where, f"'{key}' must be a table ([{key}]), got {type(t).__name__}")
    if unknown := sorted(set(t) - set(known)):
        fail(where, f"[{key}] unknown key '{unknown[0]}' (known: {', '.join(known)})")
    if missing := [k for k in required if k not in t]:
        fail(where, f"[{key}] missing required key '{missing[0]}'")
    return t


def list_of(where: str, value: object, what: str, ok, empty: bool = False) -> tuple:
    if not isinstance(value, list) or (not value and not empty) or not all(ok(v) for v in value):
        fail(where, f"{what} must be a {'' if empty else 'non-empty '}list, got {json.dumps(value, default=str)[:80]}")
    if len(set(value)) != len(value):
        fail(where, f"{what} lists a value twice: {value}")
    return tuple(value)


def string(where: str, d: dict, key: str, what: str | None = None) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        fail(where, f"{what or key} must be a non-empty string, got {json.dumps(v, default=str)[:60]}")
    return v


def values(vals) -> str:
    """A grid as the protocol block writes it: {0.1, 0.3}."""
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals) + "}"
