"""Training survives real use: SIGKILL + --resume equals an uninterrupted run; 2-process gloo DDP
keeps every rank's parameters identical. The single-process runs of the worker script are forked by the
warm launcher (warm_kdasr.py): each its own process, without importing torch again; SIGKILL to its
client kills it."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from warm_kdasr import warm_kdasr

pytestmark = pytest.mark.slow  # every test here trains or runs a chain of subprocesses

WORKER = str(Path(__file__).with_name("train_worker.py"))
STEPS = 10


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Iterator[list[str]]:
    """The command that runs the worker script: `python train_worker.py`, forked by the warm launcher."""
    with warm_kdasr(tmp_path_factory.mktemp("warm"), dict(os.environ)) as prefix:
        yield [*shlex.split(prefix), "--script", WORKER]


def _run(worker: list[str], out: Path, steps: int = STEPS, *extra: str) -> None:
    subprocess.run([*worker, str(out), str(steps), *extra], check=True, capture_output=True)


def _logged_step(out: Path) -> int:
    log = out / "train_log.csv"
    lines = log.read_text().splitlines() if log.exists() else []
    return int(lines[-1].split(",")[0]) if len(lines) > 1 and lines[-1][:1].isdigit() else 0


def test_sigkill_and_resume_equals_uninterrupted(worker, tmp_path):
    _run(worker, tmp_path / "full")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*worker, str(killed), str(STEPS)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _logged_step(killed) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch, after SpecAugment started: every RNG matters
    proc.wait()
    stopped_at = _logged_step(killed)
    assert 0 < stopped_at < STEPS, "the run finished before it could be killed"
    _run(worker, killed)  # same command again: resumes from last.pt
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(killed / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == STEPS and a["epoch"] == b["epoch"] and a["batch_pos"] == b["batch_pos"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in ("exp_avg", "exp_avg_sq"))
    # the log holds each step once, as in the uninterrupted run
    steps = [r.split(",")[0] for r in (killed / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, STEPS + 1)]


def test_sigkilled_branch_resumed_equals_uninterrupted_branch(worker, tmp_path):
    """A branch (kdasr train --branch-from) killed mid-run and started again resumes its own last.pt."""
    _run(worker, tmp_path / "src", 8)
    source = tmp_path / "src" / "epoch-1.pt"
    start = torch.load(source, weights_only=False)["step"]
    steps = start + 8
    _run(worker, tmp_path / "full", steps, "--branch-from", str(source))
    killed = tmp_path / "killed"
    cmd = [*worker, str(killed), str(steps), "--branch-from", str(source)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _logged_step(killed) < start + 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert start < _logged_step(killed) < steps, "the branch finished before it could be killed"
    _run(worker, killed, steps, "--branch-from", str(source))  # the same command again: resumes the branch
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(killed / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == steps and (a["epoch"], a["batch_pos"]) == (b["epoch"], b["batch_pos"])
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert b["summary"]["branched_from"]["path"] == str(source)
    logged = [r.split(",")[0] for r in (killed / "train_log.csv").read_text().splitlines()[1:]]
    assert logged == [str(i) for i in range(start + 1, steps + 1)]


def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            WORKER,
            str(out),
            "6",
            "--save-rank-state",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    r0, r1 = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["step"] == 6 and ck["world_size"] == 2 and len(ck["rngs"]) == 2
