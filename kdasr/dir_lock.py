"""One writer per folder: an OS file lock (flock) on FOLDER/NAME, held for a block. It is released when
the process ends, however it ends (a kill, the end of a session), so a lock file left behind never blocks
a rerun. Used by the recipe's run dir (recipe/exp_lock.py) and by the soft-label writers, whose folders a
recipe and a hand-started run could otherwise fill at once, each doing the other's work."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class FolderBusy(Exception):
    """FOLDER is held by another process (its holder line is the message)."""


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def dir_lock(folder: Path, name: str, wait: bool = False, say: Callable[[str], None] | None = None,
             poll_s: float = 30.0) -> Iterator[None]:
    """Hold FOLDER/NAME for the block. Held by another process: FolderBusy (its holder: pid and since when),
    or with WAIT, waited for (SAY told once, with the holder, when the wait starts)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): unguarded, as before the lock
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise FolderBusy(_holder(path)) from None
                if not told and say is not None:
                    say(_holder(path))
                    told = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
