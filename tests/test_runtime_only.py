"""A runtime-only install explains itself (issue 30 items 6 and 13): commands that need an extra say in one
line which one to install, with torch hidden by a meta-path blocker in a real subprocess; `kdasr
--version`; the licence the package declares is in the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = '''import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
'''


def kdasr_without(blocked: set[str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "kdasr", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True)


@pytest.mark.parametrize(
    "args",
    [
        ("train", "--train", "t.jsonl", "--dev", "d.jsonl", "--tokenizer", "tok.model", "--out", "exp"),
        ("export", "exp/last.pt", "--out", "model"),
        ("export-lm", "--lm", "teachers/lm", "--out", "model"),
    ],
)
def test_commands_needing_torch_name_the_extra(tmp_path, args):
    proc = kdasr_without({"torch"}, *args, tmp_path=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == (f"error: kdasr {args[0]} needs the train extra, which is not installed "
                                   "(torch is missing): pip install 'kdasr[train]'")


def test_the_runtime_still_works_without_torch(tmp_path):
    clip = ROOT / "eval" / "samples" / "web_matthew_6-026.flac"
    proc = kdasr_without({"torch"}, "transcribe", str(clip), "--threads", "1", "-q", tmp_path=tmp_path)
    assert proc.returncode == 0 and len(proc.stdout.split()) > 5, proc.stderr


def test_other_missing_modules_still_raise(tmp_path):
    # a module that is no extra's is a bug, not an install choice: its traceback stays
    proc = kdasr_without({"jiwer"}, "eval", "--manifest", str(ROOT / "eval" / "samples" / "manifest.jsonl"),
                         tmp_path=tmp_path)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


def test_version_and_licence():
    import kdasr

    proc = subprocess.run([sys.executable, "-m", "kdasr", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip() == f"kdasr {kdasr.__version__}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == kdasr.__version__ and project["license"]["text"] == "Apache-2.0"
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {kdasr.__version__}" in changelog
