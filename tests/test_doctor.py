"""`kdasr doctor` as a real subprocess: runtime/providers, two onnxruntime builds installed together,
CPU features for int8, a model dir's files and graph names, and --device cuda's reason on a CPU box.
Also: the serve/doctor/ray modules stay torch-free."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kdasr.runtime.doctor import cpu_checks, installed_runtimes
from tests.test_torch_free import BLOCKER

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "export" / "demo-en"


def doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdasr", "doctor", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def fake_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_doctor_on_the_shipped_model():
    p = doctor("--model", str(SHIPPED))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "CPUExecutionProvider" in p.stdout and "one installed: onnxruntime" in p.stdout
    assert any(line.startswith(("ok    int8", "warn  int8")) for line in p.stdout.splitlines())
    for graph in ("encoder.onnx", "decoder.onnx", "encoder.int8.onnx"):
        assert f"ok    {graph.split('.')[0]} {graph}:" in p.stdout


def test_two_onnxruntime_builds_are_detected_and_explained(tmp_path):
    fake_dist(tmp_path, "onnxruntime-gpu", "1.20.0")  # real dist-info metadata, found on sys.path
    assert installed_runtimes([str(tmp_path)]) == {"onnxruntime-gpu": "1.20.0"}
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = doctor("--model", str(SHIPPED), env=env)
    assert p.returncode == 1
    line = next(x for x in p.stdout.splitlines() if x.startswith("FAIL  onnxruntime builds"))
    assert "onnxruntime-gpu 1.20.0" in line and "silent CPU fallback" in line and "pip uninstall" in line
    assert "warn  CUDA provider: onnxruntime-gpu is installed but CUDAExecutionProvider is not available" in p.stdout


def test_broken_model_dir_is_reported_per_file(tmp_path):
    bad = tmp_path / "model"
    shutil.copytree(SHIPPED, bad)
    info = json.loads((bad / "model.json").read_text())
    info["graphs"]["decoder"]["inputs"][0] = "token_ids"  # names drift from the graph
    (bad / "model.json").write_text(json.dumps(info))
    (bad / "encoder.int8.onnx").unlink()
    (bad / "encoder.onnx").write_bytes(b"not an onnx graph")
    p = doctor("--model", str(bad))
    assert p.returncode == 1
    assert "FAIL  encoder encoder.int8.onnx: missing" in p.stdout
    assert "FAIL  encoder encoder.onnx: onnxruntime cannot load it" in p.stdout
    assert "FAIL  decoder decoder.onnx: inputs ['tokens'," in p.stdout and "model.json ['token_ids'" in p.stdout
    assert "ok    decoder decoder.int8.onnx" not in p.stdout  # same drifted names: also FAIL
    assert doctor("--model", str(tmp_path)).stdout.count("FAIL  model.json: ") == 1


def test_cuda_check_says_why_it_cannot_run():
    import onnxruntime as ort

    p = doctor("--model", str(SHIPPED), "--device", "cuda")
    line = next(x for x in p.stdout.splitlines() if "cuda decode" in x)
    if "CUDAExecutionProvider" in ort.get_available_providers():  # a GPU machine: the decode must really run
        assert p.returncode == 0 and line.startswith("ok"), p.stdout
    else:
        assert p.returncode == 1 and line.startswith("FAIL") and "no CUDA provider" in line


def test_int8_verdict_follows_cpu_features():
    verdict = {frozenset(f): [c for c in cpu_checks(set(f)) if c.name == "int8"][0].status
               for f in (("avx2", "avx512f", "avx512_vnni"), ("avx2", "avx_vnni"), ("avx2",), ("sse4_2",))}
    assert list(verdict.values()) == ["ok", "ok", "warn", "warn"]
    assert cpu_checks(set())[0].status == "info"  # no flags (macOS/ARM): say so, no verdict


def test_serve_doctor_and_ray_modules_are_torch_free(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import kdasr.cli, kdasr.serve.app, kdasr.runtime.doctor, kdasr.reports.loadtest"
    code += ", kdasr.runtime.jobs.ray_batch"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert p.returncode == 0, p.stderr
    assert doctor("--model", str(SHIPPED), env=env).returncode == 0
