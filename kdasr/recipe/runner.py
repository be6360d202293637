"""A small stage runner in the manner of a Kaldi run.sh, without the bash: a recipe is a list of named
stages; a stage is a Python function that runs commands (the `kdasr` CLI) as logged subprocesses, each
skipped when its outputs are complete (`fresh`: they exist and no input is newer, make's rule) and
written atomically (`run_into`: a temporary directory renamed when the command succeeded). A killed run
resumes: finished outputs are skipped, and the trainers resume from their own last checkpoint. The
runner logs each stage, what it ran and its wall time, and stops at the first failure with one line
naming the stage and the log of the command that failed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RecipeError(Exception):
    """A recipe failure, told to the user as one line (no traceback)."""


def log(msg: str) -> None:
    print(f"[recipe {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fresh(out: Path, *inputs: Path) -> bool:
    """OUT exists and no input is newer (a missing input counts as older, like bash's -nt)."""
    try:
        t = out.stat().st_mtime_ns
    except OSError:
        return False
    for f in inputs:
        try:
            if f.stat().st_mtime_ns > t:
                return False
        except OSError:
            pass
    return True


def write_if_changed(path: Path, text: str) -> None:
    """TEXT and a newline into PATH, atomically, only when it differs (a rerun keeps the mtime, so what
    depends on the file is not redone)."""
    try:
        if path.read_text().rstrip("\n") == text.rstrip("\n"):
            return
    except OSError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def tail(path: Path, n: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass
class Runner:
    """Runs the commands of a recipe: each into its log under LOGS, at most JOBS at a time (a job slot per
    command: `parallel`'s items and `background` work share them)."""

    logs: Path
    jobs: int = 1
    ran: int = 0  # commands run (a stage that ran none was complete)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _slots: threading.Semaphore = field(init=False, repr=False)
    _outputs: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _background: list[Future] = field(default_factory=list, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._slots = threading.Semaphore(max(1, self.jobs))

    def output_lock(self, key: object) -> threading.Lock:
        """One lock per output (a folder, a file): two jobs that need the same output make it once, the
        second waiting for the first (then finding it complete)."""
        with self._lock:
            return self._outputs.setdefault(str(key), threading.Lock())

    def background(self, fn: Callable[[Any], None], item: Any) -> None:
        """fn(item) started now in a thread of its own, the stages going on beside it: its commands take job
        slots like any other, so the stages get the slots left (a long teacher pass on one core, the
        sweeps on the other). What needs its output waits for it through `output_lock`; `wait_background`
        waits for all of it."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(thread_name_prefix="recipe-background")
            self._background.append(self._pool.submit(fn, item))

    def wait_background(self) -> BaseException | None:
        """Wait for every background job (saying so when one is still running); the first failure, if any
        (the others are in their logs)."""
        with self._lock:
            jobs, self._background = self._background, []
        if running := sum(not f.done() for f in jobs):
            log(f"waiting for {running} background job(s) to end (logs in {self.logs})")
        errors = [e for f in jobs if (e := f.exception()) is not None]
        return errors[0] if errors else None

    def run(self, argv: list[str], log_name: str, *, what: str, append: bool = True,
            announce: str | None = None) -> None:
        """ARGV with stdout and stderr into LOGS/LOG_NAME.log, ANNOUNCE logged once it has a job slot (when it
        starts, not while it waits); a failure raises RecipeError naming WHAT and the log, after printing the
        log's last lines."""
        logf = self.logs / f"{log_name}.log"
        logf.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.ran += 1
        with self._slots, open(logf, "a" if append else "w") as out:
            if announce:
                log(announce)
            try:
                rc = subprocess.run([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL).returncode
            except OSError as e:
                raise RecipeError(f"{what}: cannot run {argv[0]}: {e.strerror}") from None
        if rc != 0:
            if text := tail(logf):
                print(text, file=sys.stderr, flush=True)
            raise RecipeError(f"{what} failed (exit {rc}, log {logf})")

    def run_into(self, out_dir: Path, argv: list[str], log_name: str, *, what: str) -> None:
        """ARGV --out OUT_DIR.tmp, renamed to OUT_DIR once complete (a directory that exists is done)."""
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.run([*argv, "--out", tmp], log_name, what=what)
        shutil.rmtree(out_dir, ignore_errors=True)
        tmp.rename(out_dir)

    def parallel(self, fn: Callable[[Any], None], items: Iterable[Any], label: str) -> None:
        """fn(item) for each item, JOBS at a time; after a failure no new item starts, the running ones
        finish, and the first failure is raised (with how many others failed)."""
        errors: list[BaseException] = []
        running: set[Future] = set()

        def collect(done: set[Future]) -> None:
            for f in done:
                running.discard(f)
                if (e := f.exception()) is not None:
                    errors.append(e)

        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            for item in items:
                while len(running) >= max(1, self.jobs):
                    collect(wait(running, return_when=FIRST_COMPLETED)[0])
                if errors:
                    break
                running.add(pool.submit(fn, item))
            collect(wait(running)[0] if running else set())
        if errors:
            first = errors[0]
            if not isinstance(first, RecipeError):
                raise first
            n = len(errors) - 1
            more = f" (and {n} more failed job(s) of {label}; logs in {self.logs})" if n else ""
            raise RecipeError(f"{first}{more}")


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[], None]
    doc: str
    default: bool = True  # in the default sequence (else only when named)


def select(stages: list[Stage], names: list[str], start: str | None = None) -> list[Stage]:
    """The stages to run: NAMES in their order, else the default sequence (from START on); an unknown
    name is refused before anything runs."""
    by_name = {s.name: s for s in stages}
    for n in [*names, *([start] if start else [])]:
        if n not in by_name:
            raise RecipeError(f"unknown stage '{n}' (stages: {' '.join(by_name)})")
    if names:
        return [by_name[n] for n in names]
    chosen = [s for s in stages if s.default]
    if start:
        chosen = chosen[[s.name for s in chosen].index(start):] if by_name[start].default else [by_name[start]]
    return chosen


def run_stages(stages: list[Stage], runner: Runner, times: Path | None = None,
               on_done: Callable[[str, float, int], None] | None = None,
               on_start: Callable[[str], None] | None = None) -> None:
    """Each stage in turn: logged with its wall time; one that took a minute or more records it in
    TIMES/NAME (seconds: the table states them); ON_DONE(name, seconds, commands run) after each
    stage that finished (ON_START(name) before each). A failure stops the run with the stage's name."""
    for stage in stages:
        log(f"stage {stage.name}")
        if on_start is not None:
            on_start(stage.name)
        t0, ran = time.monotonic(), runner.ran
        try:
            stage.run()
        except RecipeError as e:
            raise RecipeError(f"stage {stage.name}: {e}") from None
        took = time.monotonic() - t0
        n = runner.ran - ran
        did = f"{n} command(s) run" if n else "complete, nothing run"
        log(f"stage {stage.name}: {did} ({took:.0f} s)")
        if times is not None and took >= 60:
            times.mkdir(parents=True, exist_ok=True)
            write_if_changed(times / stage.name, str(int(took)))
        if on_done is not None:
            on_done(stage.name, took, n)
