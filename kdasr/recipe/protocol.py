"""A protocol frozen into a run dir (issue 28 item 1): `freeze` copies the protocol file into EXP
(protocol.toml) and locks its fingerprint (protocol.lock.json); `require_frozen`, which the test-table
stage calls, refuses a protocol whose fingerprint is not the locked one unless it records the change
(a [[change]] whose `from` is the locked fingerprint): then the lock moves on, keeping its history.
The protocol itself (reading, fingerprint, the Markdown block) is kdasr/spec/protocol.py.

protocol.lock.json:
  {"name", "fingerprint", "time", "path",                  the protocol in force
   "history": [{"fingerprint", "time", "path", "change"}]}  every fingerprint frozen, in order; "change"
                                                            is the [[change]] that moved the lock (null first)"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

from ..errors import KdasrError
from ..io_utils import atomic_write_bytes, atomic_write_text, read_json
from ..spec.protocol import Protocol, read_protocol

LOCK = "protocol.lock.json"
COPY = "protocol.toml"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_lock(exp: Path) -> dict | None:
    """EXP's lock, or None when nothing is frozen there; KdasrError for a file that is not a lock."""
    path = Path(exp) / LOCK
    if not path.exists():
        return None
    lock = read_json(path, "not a protocol lock")
    if not (isinstance(lock, dict) and isinstance(lock.get("fingerprint"), str)
            and isinstance(lock.get("history"), list)):
        raise KdasrError(f"{path}: not a protocol lock (no fingerprint and history)")
    return lock


def _write(protocol_path: Path, exp: Path, lock: dict) -> None:
    """The protocol's copy first, then the lock (the lock is what says it is frozen)."""
    atomic_write_bytes(exp / COPY, protocol_path.read_bytes())
    atomic_write_text(exp / LOCK, json.dumps(lock, indent=2, ensure_ascii=False) + "\n")


def _entry(p: Protocol, protocol_path: Path, change: dict | None) -> dict:
    return {"fingerprint": p.fingerprint, "time": _now(), "path": str(protocol_path), "change": change}


def settle(protocol_path: str | Path, exp: str | Path, create: bool) -> tuple[Protocol, str]:
    """Check `protocol_path` against EXP's lock: (the protocol, what happened) where what happened is
    "frozen" (no lock yet and `create`), "unchanged" or "changed" (a recorded change moved the lock).
    KdasrError (one line, naming both files and fingerprints) otherwise."""
    protocol_path, exp = Path(protocol_path), Path(exp)
    p = read_protocol(protocol_path)
    lock = read_lock(exp)
    fp = p.fingerprint
    if lock is None:
        if not create:
            raise KdasrError(f"{exp / LOCK}: no protocol frozen in {exp}: freeze the protocol before building a test "
                             f"table (kdasr protocol freeze {protocol_path} --exp {exp})")
        first = _entry(p, protocol_path, None)
        _write(protocol_path, exp, {"name": p.name, **{k: first[k] for k in ("fingerprint", "time", "path")},
                                    "history": [first]})
        return p, "frozen"
    old = lock["fingerprint"]
    if fp == old:
        return p, "unchanged"
    change = next((c for c in p.changes if c.from_fingerprint == old), None)
    if change is None:
        raise KdasrError(
            f"{protocol_path} (fingerprint {fp[:16]}) is not the protocol frozen in {exp / LOCK} (fingerprint "
            f"{old[:16]}): record the change as a [[change]] with from = \"{old}\", date, what, why and after_test, "
            "or freeze it into another run dir"
        )
    entry = _entry(p, protocol_path, dataclasses.asdict(change))
    _write(protocol_path, exp, {**lock, "name": p.name, **{k: entry[k] for k in ("fingerprint", "time", "path")},
                                "history": [*lock["history"], entry]})
    return p, "changed"


def freeze(protocol_path: str | Path, exp: str | Path) -> tuple[Protocol, str]:
    """Freeze the protocol into EXP (EXP/protocol.toml + EXP/protocol.lock.json); again with the same
    content: nothing to do; with other content: as `require_frozen`."""
    return settle(protocol_path, exp, create=True)


def require_frozen(protocol_path: str | Path, exp: str | Path) -> Protocol:
    """The protocol, when it is the one frozen in EXP or records its change from it (the lock then
    follows); KdasrError when EXP holds no frozen protocol or another one."""
    return settle(protocol_path, exp, create=False)[0]
