"""`kdasr transcribe` on broken inputs mixed with good ones: one error line each, the rest done, exit 1."""

from __future__ import annotations

from conftest import run_kdasr

from kdasr.data.manifest import read_manifest


def test_bad_files_reported_good_files_transcribed(tiny_corpus, tiny_model, tmp_path):
    good = [u.audio for u in read_manifest(tiny_corpus / "test.jsonl")[:2]]
    missing = tmp_path / "missing.wav"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    folder = tmp_path / "folder"
    folder.mkdir()
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio at all\n" * 10)
    proc = run_kdasr(
        "transcribe",
        good[0],
        str(missing),
        str(empty),
        str(folder),
        str(fake),
        good[1],
        "--model",
        str(tiny_model),
        check=False,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, proc.stderr
    for path, reason in (
        (missing, "no such file"),
        (empty, "empty"),
        (folder, "directory"),
        (fake, "not a readable audio"),
    ):
        assert any(str(path) in e and reason in e for e in errors), (path, errors)
    assert "Traceback" not in proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == good


def test_missing_model_dir_is_a_clear_error(tmp_path):
    proc = run_kdasr("transcribe", "x.wav", "--model", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 1
    assert "not a kdasr model directory" in proc.stderr and "Traceback" not in proc.stderr
