"""Teacher training: the schedule is planned over the budget it really runs, progress is logged
to OUT/train_log.csv, and a run killed with SIGKILL resumes from its atomic checkpoint."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from kdasr.cli.teacher import teacher_app
from kdasr.errors import KdasrError
from kdasr.teachers.common import TeacherTrainConfig, resolve_device
from kdasr.teachers.train_loop import lr_at, progress_of
from kdasr.text import train_tokenizer
from tests.conftest import run_kdasr

SENTENCES = [
    "in the beginning god created the heavens and the earth",
    "the earth was formless and empty",
    "god said let there be light and there was light",
    "it is a truth universally acknowledged",
]


def test_schedule_decays_when_the_minutes_are_nearly_spent():
    cfg = TeacherTrainConfig(steps=10**9, lr=1e-3, warmup_steps=10, minutes=10.0, decay_frac=0.2)
    assert lr_at(4, 0.0, cfg) == pytest.approx(5e-4)  # warmup by steps
    assert lr_at(500, progress_of(500, 60.0, cfg), cfg) == pytest.approx(1e-3)  # 1 of 10 minutes: peak
    assert lr_at(500, progress_of(500, 9 * 60.0, cfg), cfg) == pytest.approx(1e-3 * (1 - 0.9 * 0.5))
    assert progress_of(500, 10 * 60.0, cfg) >= 1.0  # the budget is spent: the loop stops at 10% lr
    by_steps = TeacherTrainConfig(steps=1000, lr=1e-3, warmup_steps=10)
    assert lr_at(900, progress_of(900, 0.0, by_steps), by_steps) == pytest.approx(1e-3 * (1 - 0.9 * 0.5))


def _log_steps(path) -> list[int]:
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return [int(r["step"]) for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "lm"])
def test_killed_training_resumes_from_its_checkpoint(tmp_path, kind):
    (tmp_path / "text.txt").write_text("\n".join(SENTENCES * 4) + "\n\n" + "\n".join(SENTENCES[::-1]) + "\n")
    tok = train_tokenizer([tmp_path / "text.txt"], tmp_path / "tok", vocab_size=40)
    out = tmp_path / kind
    args = ["teacher", kind, str(tmp_path / "text.txt"), "--tokenizer", str(tok), "--out", str(out)]
    args += ["--size", "tiny", "--steps", "60", "--threads", "1", "--warmup", "5", "--save-every", "0.001"]
    args += ["--batch-size", "4", "--dev", str(tmp_path / "text.txt"), "--eval-every", "50"]
    if kind == "bert":
        args += ["--window", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdasr", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    state = out / "train_state.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not state.is_file():
        time.sleep(0.05)  # kill as soon as the first checkpoint is there
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.is_file(), proc.stderr.read().decode()[-2000:]
    done = run_kdasr(*args, env={"OMP_NUM_THREADS": "1"})
    summary = done.stdout[done.stdout.index("{") :]
    assert '"steps": 60' in summary and '"resumed_from_step": 0,' not in summary, summary
    if not torch.cuda.is_available():
        assert '"device": "cpu"' in summary  # --device auto, no GPU
    steps = _log_steps(out / "train_log.csv")
    assert steps == sorted(set(steps)) and steps[-1] == 50  # one row per 50 steps, none twice
    saved = out / ("config.json" if kind == "bert" else "lm.pt")
    assert saved.is_file()
    # the same command again: the budget is spent, so the saved teacher stays (no re-save under a
    # soft-label pass reading it, no second dev pass) and the summary is the saved one
    before = (saved.stat().st_mtime_ns, (out / "train_log.csv").read_text())
    again = run_kdasr(*args, env={"OMP_NUM_THREADS": "1"})
    assert "already holds this teacher" in again.stdout and '"already_trained": true' in again.stdout, again.stdout
    assert '"steps": 60' in again.stdout
    assert (saved.stat().st_mtime_ns, (out / "train_log.csv").read_text()) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
@pytest.mark.parametrize("command", ["bert", "lm", "soft-labels"])
def test_a_device_torch_cannot_use_is_one_line_naming_it(tmp_path, command):
    (tmp_path / "text.txt").write_text("\n".join(SENTENCES) + "\n")
    tok = train_tokenizer([tmp_path / "text.txt"], tmp_path / "tok", vocab_size=40)
    args = [command, str(tmp_path / "text.txt"), "--tokenizer", str(tok), "--out", str(tmp_path / "out")]
    if command == "soft-labels":
        args += ["--teacher", str(tmp_path)]
    res = CliRunner().invoke(teacher_app, [*args, "--device", "cuda"])
    assert res.exit_code == 1, res.output
    assert "--device cuda" in res.output and "sees no CUDA GPU" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()  # refused before any work
    assert resolve_device("auto") == "cpu" and resolve_device("CPU") == "cpu"
    with pytest.raises(KdasrError, match="expected auto, cpu"):
        resolve_device("tpu")
