"""One recipe run per run dir: two `kdasr recipe claim` processes on the same EXP would train the same
student into the same folder and overwrite each other's checkpoints. The lock is an OS file lock
(flock) on EXP/recipe.lock, so it is released when the process ends, however it ends (a kill, the end
of a session): a stale lock file never blocks a rerun."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .runner import RecipeError

LOCK_NAME = "recipe.lock"


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def exp_lock(exp: Path, wait: bool = False, say: Callable[[str], None] = print,
             poll_s: float = 30.0) -> Iterator[None]:
    """Hold EXP's recipe lock for the block. Taken: refused with a RecipeError naming the holder, or with
    WAIT, waited for (one line when the wait starts, so a log shows why nothing moves)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the recipe runs unguarded, as it did before the lock
        yield
        return
    exp.mkdir(parents=True, exist_ok=True)
    path = exp / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(path)
                if not wait:
                    raise RecipeError(f"{exp} is in use by another recipe run ({holder}): wait for it to end, "
                                      "or pass --wait to start when it has") from None
                if not told:
                    say(f"waiting for the other recipe run on {exp} ({holder}) to end")
                    told = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
