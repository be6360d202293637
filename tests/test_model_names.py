"""Models by name (issue 30 item 3): `-m demo-en`, `KDASR_MODEL=demo-en` and `Transcriber("demo-en")` work
from any folder and from an installed wheel (the shipped model is package data), `kdasr models` lists
what is installed, and `kdasr models add` puts one's own export in the user's model dir."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "eval" / "samples" / "web_matthew_6-026.flac"


def kdasr(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kdasr", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "my-models"
    monkeypatch.setenv("KDASR_MODELS", str(d))
    return d


@pytest.mark.slow
def test_name_works_from_any_folder_as_flag_and_env(tmp_path, user_dir):
    by_flag = kdasr("transcribe", str(CLIP), "-m", "demo-en", "--threads", "1", "-q", cwd=tmp_path)
    assert by_flag.returncode == 0, by_flag.stderr
    by_env = kdasr("transcribe", str(CLIP), "--threads", "1", "-q", cwd=tmp_path, env={"KDASR_MODEL": "demo-en"})
    assert by_env.returncode == 0 and by_env.stdout == by_flag.stdout and len(by_flag.stdout.split()) > 5


def test_unknown_name_is_one_line_naming_the_installed(tmp_path, user_dir):
    proc = kdasr("transcribe", str(CLIP), "-m", "demo-xx", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: demo-xx: no such model directory") and "demo-en" in proc.stderr


@pytest.mark.slow
def test_models_lists_and_add_installs_by_name(tmp_path, user_dir):
    listing = kdasr("models", cwd=tmp_path)
    assert listing.returncode == 0
    assert any(line.split()[:3] == ["*", "demo-en", "shipped"] for line in listing.stdout.splitlines()), listing.stdout
    assert str(user_dir) in listing.stdout
    added = kdasr("models", "add", str(ROOT / "export" / "demo-en"), "--name", "mine", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert (user_dir / "mine" / "model.json").is_file() and not list(user_dir.glob(".mine.*"))
    assert any(line.split()[:2] == ["mine", "user"] for line in kdasr("models", cwd=tmp_path).stdout.splitlines())
    again = kdasr("models", "add", str(ROOT / "export" / "demo-en"), "--name", "mine", cwd=tmp_path)
    assert again.returncode == 1 and "--replace" in again.stderr
    not_a_model = kdasr("models", "add", str(tmp_path), cwd=tmp_path)
    assert not_a_model.returncode == 1 and not_a_model.stderr.startswith("error:")

    from kdasr import Transcriber

    t = Transcriber("mine", threads=1)
    assert t.model.model_dir == user_dir / "mine"
    assert t.transcribe(CLIP).text == Transcriber("demo-en", threads=1).transcribe(CLIP).text


@pytest.mark.slow
def test_installed_wheel_finds_the_shipped_model_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("kdasr-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kdasr/shipped_models/demo-en/model.json" in names and "kdasr/py.typed" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = ("import kdasr; from kdasr.model_store import resolve_model; print(kdasr.__file__); print(resolve_model()); "
            f"print(kdasr.Transcriber('demo-en', threads=1).transcribe({str(CLIP)!r}).text)")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("KDASR_MODEL", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    module, model, text = out.stdout.splitlines()
    assert module.startswith(str(site)) and model.startswith(str(site)) and len(text.split()) > 5
