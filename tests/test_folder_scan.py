"""Folder scans report media they cannot read (issue 30 item 12): an .m4a beside a .flac is an error line
naming it and the reason, the .flac is still transcribed, the exit status says one failed, and
files that are not media (notes.txt) stay out of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_kdasr

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "eval" / "samples" / "web_matthew_6-026.flac"


@pytest.mark.slow
def test_unreadable_formats_in_a_folder_are_reported(tmp_path):
    folder = tmp_path / "talks"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(CLIP, folder / "a.flac")
    (folder / "sub" / "b.m4a").write_bytes(b"\0\0\0 ftypM4A " + b"\0" * 64)
    (folder / "notes.txt").write_text("not audio")
    proc = run_kdasr("transcribe", str(folder), "--threads", "1", check=False)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{folder / 'a.flac'}\t") and len(proc.stdout.splitlines()) == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {folder / 'sub' / 'b.m4a'}: format .m4a cannot be read (convert it, e.g. ffmpeg -i "
                      "b.m4a b.flac)"], proc.stderr
    assert "notes.txt" not in proc.stderr and "Traceback" not in proc.stderr
    only = run_kdasr("transcribe", str(folder / "sub"), check=False)  # nothing readable: still named, not "no audio"
    assert only.returncode == 1 and "b.m4a: format .m4a cannot be read" in only.stderr
