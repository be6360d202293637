"""The recipe's stage runner (kdasr/recipe/runner.py) with trivial stages: real `python -c` subprocesses,
no corpus and no training. Complete work is skipped, a failed or killed command leaves no output and is
redone by the next run, the first failure stops the run with one line naming the stage and the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdasr.recipe.runner import RecipeError, Runner, Stage, fresh, run_stages, select, write_if_changed

PY = sys.executable


def _touch(path: Path, mtime: float) -> None:
    path.write_text(path.name)
    os.utime(path, (mtime, mtime))


def test_fresh_is_makes_rule(tmp_path):
    out, a, b = tmp_path / "out", tmp_path / "a", tmp_path / "b"
    assert not fresh(out, a)  # no output: not done
    _touch(a, 1000)
    _touch(out, 2000)
    assert fresh(out, a) and fresh(out, a, tmp_path / "missing")  # a missing input does not make it stale
    _touch(b, 3000)
    assert not fresh(out, a, b)


def test_write_if_changed_keeps_the_mtime_of_the_same_text(tmp_path):
    f = tmp_path / "systems.txt"
    write_if_changed(f, "baseline\nkd-lm-0.1")
    os.utime(f, (1000, 1000))
    write_if_changed(f, "baseline\nkd-lm-0.1\n")  # the same text (a trailing newline is no difference)
    assert f.stat().st_mtime == 1000 and f.read_text() == "baseline\nkd-lm-0.1\n"
    write_if_changed(f, "baseline")
    assert f.read_text() == "baseline\n" and not (tmp_path / "systems.txt.tmp").exists()


def test_run_logs_and_a_failure_names_the_log(tmp_path, capsys):
    r = Runner(tmp_path / "logs")
    r.run([PY, "-c", "print('hello')"], "ok", what="greeting")
    r.run([PY, "-c", "print('again')"], "ok", what="greeting")  # appended
    assert (tmp_path / "logs" / "ok.log").read_text() == "hello\nagain\n" and r.ran == 2
    with pytest.raises(RecipeError) as e:
        r.run([PY, "-c", "import sys; print('line 1'); sys.exit('bad input: x.wav')"], "bad", what="kdasr eval (dev)")
    assert str(e.value) == f"kdasr eval (dev) failed (exit 1, log {tmp_path / 'logs' / 'bad.log'})"
    assert "bad input: x.wav" in capsys.readouterr().err  # the log's last lines, shown


def test_run_into_writes_a_directory_only_when_complete(tmp_path):
    r, out = Runner(tmp_path / "logs"), tmp_path / "model"
    write = "import pathlib, sys; d = pathlib.Path(sys.argv[2]); d.mkdir(); (d / 'model.json').write_text('{}')"
    half = "import pathlib, sys; d = pathlib.Path(sys.argv[2]); d.mkdir(); (d / 'part').write_text('x'); sys.exit(2)"
    with pytest.raises(RecipeError, match="export of"):
        r.run_into(out, [PY, "-c", half], "export", what="export of model")
    assert not out.exists()  # the half-written one stays in model.tmp
    r.run_into(out, [PY, "-c", write], "export", what="export of model")
    assert sorted(p.name for p in out.iterdir()) == ["model.json"] and not (tmp_path / "model.tmp").exists()


def test_a_killed_command_leaves_no_output_and_the_rerun_completes(tmp_path):
    """SIGKILL to the runner and its command (one process group, as `make recipe` under Ctrl-C or a
    session's end): the output directory does not exist; the next run writes it whole."""
    out = tmp_path / "model"
    slow = ("import pathlib, sys, time; d = pathlib.Path(sys.argv[2]); d.mkdir(); (d / 'part').write_text('x'); "
            "time.sleep(60); (d / 'model.json').write_text('{}')")
    script = ("import sys; from pathlib import Path; from kdasr.recipe.runner import Runner; "
              f"Runner(Path(sys.argv[1])).run_into(Path(sys.argv[2]), [sys.executable, '-c', {slow!r}], 'x', what='x')")
    proc = subprocess.Popen([PY, "-c", script, str(tmp_path / "logs"), str(out)], start_new_session=True)
    t0 = time.time()
    while not (tmp_path / "model.tmp" / "part").exists() and time.time() - t0 < 30:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "model.tmp" / "part").exists() and not out.exists()
    done = "import pathlib, sys; d = pathlib.Path(sys.argv[2]); d.mkdir(); (d / 'model.json').write_text('{}')"
    Runner(tmp_path / "logs").run_into(out, [PY, "-c", done], "x", what="x")
    assert sorted(p.name for p in out.iterdir()) == ["model.json"]


def test_parallel_starts_nothing_after_a_failure(tmp_path):
    r = Runner(tmp_path / "logs", jobs=1)

    def job(name: str) -> None:
        code = "import sys; sys.exit(1)" if name == "bad" else f"open({str(tmp_path / name)!r}, 'w')"
        r.run([PY, "-c", code], name, what=f"job {name}")

    with pytest.raises(RecipeError, match="job bad failed"):
        r.parallel(job, ["first", "bad", "after"], "jobs")
    assert (tmp_path / "first").exists() and not (tmp_path / "after").exists()


def test_parallel_runs_jobs_side_by_side(tmp_path):
    """JOBS=2: two jobs that each wait for the other's file finish only when both run at once."""
    r = Runner(tmp_path / "logs", jobs=2)
    code = ("import pathlib, sys, time; d = pathlib.Path(sys.argv[1]); (d / sys.argv[2]).touch(); t = time.time()\n"
            "while not (d / sys.argv[3]).exists():\n"
            "    time.sleep(0.02)\n"
            "    if time.time() - t > 20: sys.exit('alone')")
    pairs = {"a": "b", "b": "a"}
    r.parallel(lambda n: r.run([PY, "-c", code, tmp_path, n, pairs[n]], n, what=n), ["a", "b"], "pair")


def test_background_work_runs_beside_the_stages_on_the_slots_they_leave(tmp_path):
    """JOBS=2 with a long job in the background: the parallel items run one at a time beside it (never
    three commands at once), all of them before it ends; a job that needs the background's output (its
    output_lock) waits for it and makes nothing twice; wait_background returns its failure."""
    r = Runner(tmp_path / "logs", jobs=2)
    spans = tmp_path / "spans"
    spans.mkdir()
    release = tmp_path / "release"
    # a command that runs until RELEASE exists (at least SECONDS), then writes its span (start, end)
    code = ("import pathlib, sys, time; d = pathlib.Path(sys.argv[1]); t0 = time.time(); "
            "time.sleep(float(sys.argv[3]))\n"
            "while not pathlib.Path(sys.argv[4]).exists() and time.time() - t0 < 60: time.sleep(0.02)\n"
            "(d / sys.argv[2]).write_text(f'{t0} {time.time()}')")
    made: list[str] = []

    def make(name: str, seconds: float, until: Path) -> None:
        with r.output_lock(tmp_path / name):  # as claim_stages.soft_one
            if (spans / name).exists():
                return
            made.append(name)
            r.run([PY, "-c", code, spans, name, seconds, until], name, what=name)

    r.background(lambda n: make(n, 0.0, release), "teacher")
    time.sleep(0.3)  # the background command has its slot
    r.parallel(lambda n: make(n, 0.3, tmp_path), ["a", "b", "c"], "sweeps")
    assert not (spans / "teacher").exists()  # the sweeps ended first: they did not wait for it
    release.touch()
    make("teacher", 0.0, tmp_path)  # needs the background's output: waits for it, does not make it again
    assert made == ["teacher", "a", "b", "c"] and r.wait_background() is None
    t = {p.name: tuple(map(float, p.read_text().split())) for p in spans.iterdir()}
    for x in "abc":  # one sweep at a time beside the teacher, every one inside its span
        assert t["teacher"][0] <= t[x][0] and t[x][1] <= t["teacher"][1]
    ab, bc = sorted(t[x] for x in "abc")[:2], sorted(t[x] for x in "abc")[1:]
    assert ab[0][1] <= ab[1][0] + 0.05 and bc[0][1] <= bc[1][0] + 0.05
    r.background(lambda n: r.run([PY, "-c", "import sys; sys.exit('broken')"], n, what=n), "bad")
    assert isinstance(r.wait_background(), RecipeError) and r.wait_background() is None


def _stages(tmp_path: Path, r: Runner, fail: set[str]) -> list[Stage]:
    """Three stages, each writing OUT/NAME from its predecessor's output, skipped when fresh."""
    def make(name: str, prev: str | None):
        def run() -> None:
            out, inp = tmp_path / name, (tmp_path / prev if prev else None)
            if fresh(out, *([inp] if inp else [])):
                return
            code = "import sys; sys.exit('broken')" if name in fail else f"open({str(out)!r}, 'w').write('x')"
            r.run([PY, "-c", code], name, what=f"make {name}")
        return Stage(name, run, f"makes {name}")

    return [make("one", None), make("two", "one"), make("three", "two"), Stage("extra", lambda: None, "", False)]


def test_stages_skip_when_complete_stop_at_a_failure_and_resume(tmp_path, capsys):
    r = Runner(tmp_path / "logs")
    with pytest.raises(RecipeError) as e:
        run_stages(select(_stages(tmp_path, r, {"two"}), []), r)
    assert str(e.value) == f"stage two: make two failed (exit 1, log {tmp_path / 'logs' / 'two.log'})"
    assert (tmp_path / "one").exists() and not (tmp_path / "three").exists()  # nothing past the failed stage
    capsys.readouterr()
    run_stages(select(_stages(tmp_path, r, set()), []), r)  # resumed: one is complete
    out = capsys.readouterr().out
    assert "stage one: complete, nothing run" in out and "stage two: 1 command(s) run" in out
    assert (tmp_path / "three").exists() and r.ran == 4
    run_stages(select(_stages(tmp_path, r, set()), []), r)
    assert r.ran == 4 and capsys.readouterr().out.count("complete, nothing run") == 3


def test_select_from_only_and_unknown(tmp_path):
    st = _stages(tmp_path, Runner(tmp_path / "logs"), set())
    assert [s.name for s in select(st, [])] == ["one", "two", "three"]  # extra runs only when named
    assert [s.name for s in select(st, [], "two")] == ["two", "three"]
    assert [s.name for s in select(st, ["three", "extra"])] == ["three", "extra"]
    with pytest.raises(RecipeError, match="unknown stage 'tree'"):
        select(st, ["one", "tree"])


def test_recipe_command_lists_refuses_and_fails_in_one_line(tmp_path):
    """`kdasr recipe run` as `make recipe` calls it: --list; an unknown stage refused before EXP is
    written; a failing stage stops with one line naming it (no traceback)."""
    env = {**os.environ, "EXP": str(tmp_path / "exp"), "DATA": str(tmp_path / "none"), "SYNTH": "0",
           "TEACHER_AMP": "none"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "kdasr", "recipe", "run", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    listed = run("--list")
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()][:10] == [
        "corpus", "prep", "quality", "sweep", "students", "export", "tune", "decode", "bench", "table"]
    bad = run("baseline", "tables")
    assert bad.returncode == 1 and bad.stderr.startswith("[recipe] error: unknown stage 'tables'")
    assert not (tmp_path / "exp").exists() and "stage baseline" not in bad.stdout
    failed = run("--from", "corpus")
    assert failed.returncode == 1 and failed.stderr == \
        f"[recipe] error: stage corpus: {tmp_path / 'none' / 'train.jsonl'}: no such manifest\n"
    assert "stage prep" not in failed.stdout  # nothing past the failed stage
