"""`kdasr bench` writes under --out only, and its options say what they do (issue 30 item 11); eval-table
names the thread count of records that left it to onnxruntime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_kdasr

ROOT = Path(__file__).resolve().parents[1]


def test_bench_needs_out_and_writes_nothing_else(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "kdasr", "bench", "--manifest", str(manifest)], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--out" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.jsonl"]  # no eval/reports/runtime.md under the cwd
    help_text = " ".join(run_kdasr("bench", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "all cores" not in help_text and "[default: 2]" in help_text and "[required]" in help_text


def test_eval_table_says_all_cores_for_unset_threads():
    from kdasr.reports.table import results_table

    rec = {"system": "s", "set": "test", "wer": 10.0, "cer": 5.0, "utterances": 3, "seconds_audio": 30.0,
           "decode_seconds": 1.0}
    assert "| 30.0 (all cores) |" in results_table([{**rec, "threads": None}])
    assert "| 30.0 (1) |" in results_table([{**rec, "threads": 1}])
    assert "None" not in results_table([{**rec, "threads": None}])
