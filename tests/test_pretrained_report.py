"""eval/reports/pretrained-encoder.md is what its generator writes from the records kept in git
(eval/pretrained/report.sh, then the hand notes): no figure in it is typed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_report_is_generated_from_the_kept_records():
    env = {**os.environ, "KDASR": f"{sys.executable} -m kdasr", "R": "eval/pretrained/records"}
    proc = subprocess.run(["bash", "eval/pretrained/report.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    generated = proc.stdout + (ROOT / "eval/pretrained/notes.md").read_text()
    assert generated == (ROOT / "eval/reports/pretrained-encoder.md").read_text(), "run make pretrained-report"
    assert "| lstm-1000-s1341 | 41.6 (23.7) | 63.6 (45.4) |" in generated  # a row read from a record
