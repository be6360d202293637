"""One recipe run per run dir: two `kdasr recipe claim` processes on the same EXP would train the same
student into the same folder and overwrite each other's checkpoints. The lock is an OS file lock
(kdasr/dir_lock.py) on EXP/recipe.lock, released when the process ends, however it ends: a stale lock
file never blocks a rerun."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..dir_lock import FolderBusy, dir_lock
from .runner import RecipeError

LOCK_NAME = "recipe.lock"


@contextmanager
def exp_lock(exp: Path, wait: bool = False, say: Callable[[str], None] = print,
             poll_s: float = 30.0) -> Iterator[None]:
    """Hold EXP's recipe lock for the block. Taken: refused with a RecipeError naming the holder, or with
    WAIT, waited for (one line when the wait starts, so a log shows why nothing moves)."""
    try:
        with dir_lock(exp, LOCK_NAME, wait=wait, poll_s=poll_s,
                      say=lambda holder: say(f"waiting for the other recipe run on {exp} ({holder}) to end")):
            yield
    except FolderBusy as e:
        raise RecipeError(f"{exp} is in use by another recipe run ({e}): wait for it to end, "
                          "or pass --wait to start when it has") from None
