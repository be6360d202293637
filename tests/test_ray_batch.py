"""`kdasr transcribe --ray` on a local Ray instance limited to 2 CPUs writes exactly the files the
local run writes (same names, same bytes), and reports the same failure the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.data")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "eval" / "samples").glob("*.flac"))


def transcribe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    cmd = [sys.executable, "-m", "kdasr", "transcribe", *args, "--model", str(ROOT / "export" / "demo-en-small"),
           "--beam", "1", "--ctc-weight", "0", "--threads", "1", "--format", "json", "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_ray_outputs_equal_local_outputs(tmp_path):
    inputs = tmp_path / "in"
    for k, src in enumerate(SAMPLES[:5]):
        dest = inputs / ("a" if k % 2 else "b") / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
    (inputs / "a" / "broken.flac").write_bytes(SAMPLES[0].read_bytes()[:2000])  # truncated: fails alike
    # relative input paths: names and sources must survive Ray workers' other working directory
    local = transcribe("in", "--output-dir", "out-local", cwd=tmp_path)
    ray = transcribe("in", "--output-dir", "out-ray", "--ray", "local:2", "--ray-actors", "2", cwd=tmp_path)
    assert local.returncode == ray.returncode == 1, ray.stderr[-3000:]
    expected = tree(tmp_path / "out-local")
    assert len(expected) == 5 and all(name.endswith(".json") for name in expected)
    assert tree(tmp_path / "out-ray") == expected
    error = [line for line in local.stderr.splitlines() if line.startswith("error: ")]
    assert error and error[0].startswith("error: in/a/broken.flac: ")
    assert error[0] in ray.stderr.splitlines()
