"""One recipe run per run dir (kdasr/recipe/exp_lock.py): a second `kdasr recipe claim` on an EXP that a
live process holds is refused in one line naming the holder, or waits with --wait; a holder that dies
(killed, its session ended) leaves nothing that blocks a rerun."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kdasr.recipe import claim
from kdasr.recipe.exp_lock import LOCK_NAME, exp_lock
from kdasr.recipe.runner import RecipeError

PROTOCOL = Path(__file__).resolve().parents[1] / "kdasr/configs/protocols/claim-v1.toml"


def _holder(exp: Path) -> subprocess.Popen:
    """Another process holding EXP's lock until it is killed (it prints once it holds it)."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from kdasr.recipe.exp_lock import exp_lock
        with exp_lock(Path({str(exp)!r})):
            print("held", flush=True)
            time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_held_run_dir_is_refused_naming_the_holder_and_freed_when_the_holder_dies(tmp_path):
    exp = tmp_path / "exp"
    p = _holder(exp)
    try:
        with pytest.raises(RecipeError, match=rf"in use by another recipe run \(pid {p.pid}, since .*--wait"):
            with exp_lock(exp):
                pass
    finally:
        p.kill()
        p.wait()
    assert (exp / LOCK_NAME).is_file()  # the file stays; the dead holder's lock does not
    with exp_lock(exp):
        assert (exp / LOCK_NAME).read_text().startswith("pid ")


def test_wait_starts_once_the_holder_has_ended(tmp_path):
    exp = tmp_path / "exp"
    p = _holder(exp)
    said: list[str] = []
    got = threading.Event()

    def second() -> None:
        with exp_lock(exp, wait=True, say=said.append, poll_s=0.05):
            got.set()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.5)
    assert not got.is_set() and said and "waiting for the other recipe run" in said[0]
    p.kill()
    p.wait()
    t.join(timeout=20)
    assert got.is_set() and len(said) == 1


def test_the_claim_recipe_refuses_a_run_dir_in_use_without_touching_it(tmp_path, capsys):
    exp = tmp_path / "exp"
    p = _holder(exp)
    try:
        assert claim.main(PROTOCOL, exp, ["freeze"]) == 1
    finally:
        p.kill()
        p.wait()
    assert "in use by another recipe run" in capsys.readouterr().err
    assert sorted(f.name for f in exp.iterdir()) == [LOCK_NAME]  # nothing frozen, no logs
