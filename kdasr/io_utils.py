"""File helpers: atomic writes (a temp file in the same folder, fsync, then rename), reading a
JSON file with a one-line error, and a file's identity (its content's sha256, or its size and mtime)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import KdasrError

NAME_MAX = 255  # bytes per file name on Linux, macOS and Windows file systems
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\.(.*)\.[a-z0-9_]{8}\.tmp", re.S)  # mkstemp: prefix + 8 of [a-z0-9_] + suffix


def temp_prefix(name: str) -> str:
    """`.NAME.` for NAME's temp file, NAME cut so the whole temp name (prefix, mkstemp's 8 characters
    and `.tmp`: 14 bytes more than NAME) fits NAME_MAX: an output whose own name fits can always
    be written."""
    room = NAME_MAX - 14
    raw = os.fsencode(name)
    if len(raw) > room:
        name = raw[:room].decode("utf-8", "ignore")  # whole characters only
    return f".{name}."


def temp_owner(filename: str) -> str | None:
    """The (possibly cut) NAME of an atomic_open temp file name `.NAME.XXXXXXXX.tmp`, else None."""
    m = _TEMP_NAME.fullmatch(filename)
    return m.group(1) if m else None


def remove_orphan_temps(folder: str | os.PathLike, belongs: Callable[[str], bool]) -> int:
    """Delete the temp files a killed writer left in `folder` (`.NAME.XXXXXXXX.tmp`) whose NAME
    `belongs` (to the files this run writes: others' temp files are left alone). The count removed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for n in names:
        owner = temp_owner(n)
        if owner is not None and belongs(owner):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, n))
                removed += 1
    return removed


def remove_orphan_temps_of(paths: Iterable[str | os.PathLike]) -> int:
    """`remove_orphan_temps` for the temp files of exactly these output paths (one listing per folder)."""
    by_folder: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        by_folder.setdefault(p.parent, set()).add(temp_prefix(p.name)[1:-1])
    return sum(remove_orphan_temps(folder, owned.__contains__) for folder, owned in by_folder.items())


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temp file beside `path`; on clean exit it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX)
    os.close(fd)
    # mkstemp creates 0600; give the final file the usual permissions (0666 minus the umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def read_json(path: str | os.PathLike, failure: str) -> Any:
    """The parsed JSON of `path`; KdasrError "PATH: FAILURE: reason" (one line) when it cannot be
    read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KdasrError(f"{path}: {failure}: {e}") from None
    except RecursionError:
        raise KdasrError(f"{path}: {failure}: nested too deeply to parse") from None


def file_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 of PATH's content (read in 1 MiB blocks), or None when it is not a file."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_stamp(path: str | os.PathLike) -> list[int] | None:
    """[size, mtime in ns] of PATH: a cheap identity for files too large to hash each time; None when
    it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]
