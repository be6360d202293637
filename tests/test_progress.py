"""Progress by audio seconds (issue 30 item 7): a long input moves the bar as its chunks are decoded, not
once at its end, and the bar `kdasr transcribe` draws on a terminal counts seconds of audio and files."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "eval" / "samples").glob("*.flac"))


def _long_file(path: Path) -> Path:
    pause = np.zeros(16000, np.float32)
    parts = [x for p in SAMPLES * 2 for x in (sf.read(p, dtype="float32")[0], pause)]
    sf.write(path, np.concatenate(parts), 16000)
    return path


@pytest.mark.slow
def test_a_long_input_reports_progress_chunk_by_chunk(tmp_path, monkeypatch):
    from kdasr import Transcriber
    from kdasr.runtime import prepare

    monkeypatch.setattr(prepare, "KEEP_SECONDS", 20.0)  # the bounded-memory path of inputs over 10 minutes
    path = _long_file(tmp_path / "long.flac")
    t = Transcriber(threads=1)
    calls: list[float] = []
    t.progress = calls.append
    result = t.transcribe(path, batch_size=2)  # chunks of GROUP_BATCHES * 2 pieces
    assert len(result.segments) >= 12
    assert len(calls) >= 2 and all(c > 0 for c in calls)
    assert abs(sum(calls) - result.duration) < 1e-6
    assert calls[0] < result.duration / 2  # the first report came well before the end
    short = [calls.clear(), t.transcribe([SAMPLES[0], SAMPLES[1]])][1]
    assert abs(sum(calls) - sum(r.duration for r in short)) < 1e-6


@pytest.mark.slow
def test_terminal_bar_counts_audio_seconds_and_files(tmp_path):
    path = _long_file(tmp_path / "long.flac")
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "kdasr", "transcribe", str(path), str(SAMPLES[0]), "--threads",
                             "1"], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(120)
    os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    total = round(sf.info(path).duration + sf.info(SAMPLES[0]).duration)
    assert f"/{total} s of audio" in text and "/2 files" in text, text[-2000:]


def test_teacher_bar_has_a_sensible_total():
    pytest.importorskip("torch")
    from kdasr.teachers.common import TeacherTrainConfig
    from kdasr.teachers.train_loop import budget_label

    by_time = TeacherTrainConfig(steps=10**9, minutes=10.0)
    assert budget_label(1220, 150.0, by_time) == "step 1220, 25% of the budget of 10 min"
    assert "1000000000" not in budget_label(1220, 150.0, by_time)
    assert budget_label(300, 5.0, TeacherTrainConfig(steps=3000)) == "step 300/3000, 10% of the budget"
