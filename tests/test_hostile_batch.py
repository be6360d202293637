"""Issue 31 items 7-9 (batch CLI and files): a batch always finishes; hostile names, stdin and
trees give one-line per-input failures or a clear refusal; orphan temp files are removed by the
run they belong to; bad decoding values and model.json are one line. Real files, the shipped
export/demo-en-small model and real `python -m kdasr` subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import KDASR, run_kdasr

from kdasr.io_utils import NAME_MAX, atomic_write_text, temp_owner, temp_prefix

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "export" / "demo-en-small"
SAMPLE = ROOT / "eval" / "samples" / "web_matthew_6-026.flac"
FAST = ["--model", str(MODEL), "--beam", "1", "--ctc-weight", "0", "--threads", "1", "--no-vad"]


def _kdasr(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: float = 120):
    return subprocess.run([*KDASR, *args], input=stdin, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _lines(proc) -> tuple[list[str], list[str]]:
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    return proc.stdout.decode().splitlines(), [ln for ln in err.splitlines() if ln.startswith("error:")]


# -- item 7: a batch can always finish -----------------------------------------------------------


def test_temp_names_fit_name_max_whatever_the_output_name():
    for name in ("a.txt", "x" * 241 + ".txt", "é" * 127 + ".txt", "y" * 255):
        prefix = temp_prefix(name)
        assert len(os.fsencode(prefix)) + 12 <= NAME_MAX  # + mkstemp's 8 characters and ".tmp"
        assert temp_owner(prefix + "abcd_123.tmp") == prefix[1:-1]
        assert name.startswith(prefix[1:-1])
    assert temp_owner(".a.txt.abc.tmp") is None and temp_owner("a.txt") is None


@pytest.mark.slow
def test_long_input_names_with_output_dir_finish_and_resume(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SAMPLE, inputs / ("x" * 245 + ".flac"))  # output 249 bytes: its temp name was 263
    unnameable = shutil.copy(SAMPLE, inputs / ("y" * 252 + ".au"))  # 255 bytes; its output would be 256
    shutil.copy(SAMPLE, inputs / "ok.flac")
    out = tmp_path / "out"
    for attempt in ("first", "resume"):
        proc = _kdasr("transcribe", str(inputs), *FAST, "--output-dir", str(out), "--skip-existing")
        _, errors = _lines(proc)
        assert proc.returncode == 1
        assert len(errors) == 1 and Path(unnameable).name in errors[0] and "256 bytes" in errors[0], errors
        # a per-file .txt holds the transcript alone (whisper's layout), the same for both inputs
        assert (out / ("x" * 245 + ".txt")).read_text().strip() == (out / "ok.txt").read_text().strip() != ""
        if attempt == "resume":
            assert "2 skipped" in proc.stderr.decode()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_hostile_stdin_and_argument_paths_fail_one_line_each(tmp_path):
    latin1 = os.fsencode(tmp_path) + b"/caf\xe9.flac"  # a real file whose name is not UTF-8
    shutil.copy(SAMPLE, latin1)
    lines = [b"y" * 5000, b"bin\x00ary", b"\xff\xfe\x01garbage\x1b[31m", latin1, str(SAMPLE).encode()]
    # strict decoding is what a UTF-8 locale gives; it used to kill the batch (UnicodeDecodeError)
    proc = _kdasr("transcribe", "-", "z" * 300, *FAST, stdin=b"\n".join(lines) + b"\n",
                  env={"PYTHONIOENCODING": "utf-8:strict"})
    errors = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr.decode(), proc.stderr
    # transcribed, and printed as the bytes of its name
    assert [line.split(b"\t")[0] for line in proc.stdout.splitlines()] == [latin1, str(SAMPLE).encode()]
    assert len(errors) == 4, errors
    by_start = {e[7:12]: e for e in errors}
    assert "path too long" in by_start["y" * 5] and "path too long" in by_start["z" * 5]
    assert by_start["bin\\x"].startswith("error: bin\\x00ary: path contains a NUL byte")
    assert by_start["\\udcf"].startswith("error: \\udcff\\udcfe\\x01garbage\\x1b[31m: ")
    assert all(e.isprintable() for e in errors)  # control characters are escaped, never written raw
    assert "4 of 6 files failed" in proc.stderr.decode()


@pytest.mark.slow
def test_manifest_ids_with_nul_are_refused_and_nul_paths_fail_alone(tmp_path):
    bad_id = tmp_path / "bad-id.jsonl"
    bad_id.write_text(json.dumps({"audio": str(SAMPLE), "id": "a\x00b"}) + "\n")
    proc = _kdasr("transcribe", "--manifest", str(bad_id), *FAST, "--output-dir", str(tmp_path / "o"))
    _, errors = _lines(proc)
    assert proc.returncode == 1 and len(errors) == 1
    assert f"{bad_id}:1: field 'id'" in errors[0] and "control character" in errors[0]

    nul_audio = tmp_path / "nul-audio.jsonl"
    nul_audio.write_text("".join(json.dumps(d) + "\n" for d in (
        {"audio": "x\x00.flac", "id": "bad"}, {"audio": str(SAMPLE), "id": "good"})))
    proc = _kdasr("transcribe", "--manifest", str(nul_audio), *FAST, "--output-dir", str(tmp_path / "o2"))
    _, errors = _lines(proc)
    assert proc.returncode == 1 and len(errors) == 1 and "NUL byte" in errors[0]
    assert (tmp_path / "o2" / "good.txt").is_file()


def test_recursive_globs_never_follow_symlink_loops_nor_repeat_a_file(tmp_path):
    tree = tmp_path / "loop"
    (tree / "a" / "b").mkdir(parents=True)
    shutil.copy(SAMPLE, tree / "a" / "x.flac")
    shutil.copy(SAMPLE, tree / "a" / "b" / "y.flac")
    (tree / "a" / "b" / "up").symlink_to("..")  # loops back
    (tree / "a" / "b" / "top").symlink_to("../..")
    (tree / "a" / "again.flac").symlink_to("x.flac")  # one file under two names
    proc = _kdasr("transcribe", f"{tree}/**/*.flac", *FAST, "--format", "jsonl", timeout=60)
    out, errors = _lines(proc)
    assert proc.returncode == 0 and not errors
    assert sorted(json.loads(line)["path"] for line in out) == [str(tree / "a/b/y.flac"), str(tree / "a/x.flac")]


def test_devices_and_fifos_are_named_as_such(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    proc = _kdasr("transcribe", "/dev/null", str(fifo), str(SAMPLE), *FAST, timeout=60)
    out, errors = _lines(proc)
    assert proc.returncode == 1 and len(out) == 1
    assert errors == ["error: /dev/null: is a character device, not an audio file",
                      f"error: {fifo}: is a FIFO (named pipe), not an audio file"]


# -- item 8: orphan temp files of killed writers ------------------------------------------------


def test_a_rerun_removes_its_own_orphan_temp_files_only(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SAMPLE, inputs / "a.flac")
    shutil.copy(SAMPLE, inputs / ("l" * 250 + ".flac"))
    out = tmp_path / "out"
    out.mkdir()
    ours = [out / ".a.txt.k3x9_q2z.tmp", out / f"{temp_prefix('l' * 250 + '.txt')}abcdefgh.tmp"]
    foreign = [out / ".b.txt.k3x9_q2z.tmp", out / ".a.txt.notours.tmp", out / "notes.tmp"]
    for p in ours + foreign:
        p.write_bytes(b"\0" * 400_000)  # the size a killed batch left
    proc = run_kdasr("transcribe", str(inputs), *FAST, "--output-dir", str(out), "--skip-existing")
    assert "removed 2 unfinished temp file(s)" in proc.stderr
    assert not any(p.exists() for p in ours) and all(p.exists() for p in foreign)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.suffix == ".txt") == [
        "a.txt", "l" * 250 + ".txt"]


def test_atomic_writes_of_the_longest_names_work(tmp_path):
    target = tmp_path / ("n" * NAME_MAX)
    atomic_write_text(target, "whole")
    assert target.read_text() == "whole" and os.listdir(tmp_path) == [target.name]


# -- item 9: decoding values and model.json in one line --------------------------------------------


@pytest.mark.parametrize("flag,value,field", [("--max-segment", "nan", "max_segment_seconds"),
                                              ("--length-bonus", "inf", "length_bonus"),
                                              ("--rescore-weight", "nan", "rescore_weight")])
def test_non_finite_decoding_flags_are_one_line(flag, value, field):
    proc = _kdasr("transcribe", str(SAMPLE), "--model", str(MODEL), flag, value)
    _, errors = _lines(proc)
    assert proc.returncode == 2 and proc.stderr.decode().strip().splitlines() == errors
    # the wording is DecodeOptions' own (shared with the server); the CLI makes it one line naming the field
    assert len(errors) == 1 and errors[0].startswith("error: invalid decoding option: ") and field in errors[0]


def _model_copy(tmp_path: Path, edit) -> Path:
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    spec = json.loads((model / "model.json").read_text())
    text = edit(spec)
    (model / "model.json").write_text(text if isinstance(text, str) else json.dumps(spec))
    return model


@pytest.mark.parametrize("name,edit,needle", [
    ("beam 2.5", lambda d: d["decoding"].update(beam=2.5), "decoding: beam must be an integer, got 2.5"),
    ("beam true", lambda d: d["decoding"].update(beam=True), "decoding: beam must be an integer, got true"),
    ("segment NaN", lambda d: d["decoding"].update(max_segment_seconds=float("nan")),
     "decoding: max_segment_seconds"),
    ("nested", lambda d: json.dumps(d)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "invalid JSON (nested too deeply)"),
])
def test_bad_model_json_is_one_line_at_load(tmp_path, name, edit, needle):
    model = _model_copy(tmp_path, edit)
    proc = _kdasr("transcribe", str(SAMPLE), "--model", str(model))
    _, errors = _lines(proc)
    assert proc.returncode == 1 and len(errors) == 1 and proc.stdout == b"", proc.stderr
    assert str(model / "model.json") in errors[0] and needle in errors[0], (name, errors)
