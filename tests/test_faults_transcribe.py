"""Issue 12 part B fault suite: `kdasr transcribe` loses nothing, invents nothing and never shows a
traceback. Real files (eval/samples, synthesised silence/noise), the shipped small model export/demo-en-small,
real onnxruntime sessions and real subprocesses (SIGKILL, read-only and full file systems)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import KDASR, run_kdasr

from kdasr.audio import load_audio
from kdasr.errors import KdasrError
from kdasr.runtime.jobs.inputs import parse_shard

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "export" / "demo-en-small"
SAMPLES = sorted((ROOT / "eval" / "samples").glob("*.flac"))
FAST = ["--model", str(MODEL), "--beam", "1", "--ctc-weight", "0", "--threads", "1"]
SR = 16000


def _write(path: Path, wave: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), SR)
    return path


def _noise(seconds: float, amp: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * amp).astype(np.float32)


def _visible(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _thirty_inputs(root: Path) -> Path:
    """30 real clips in 4 sub-folders (the 8 samples repeated, some re-levelled so texts differ)."""
    for k in range(30):
        src = SAMPLES[k % len(SAMPLES)]
        wave = load_audio(src) * (0.5 + 0.1 * (k // len(SAMPLES)))
        _write(root / f"part{k % 4}" / f"clip{k:02d}.flac", wave)
    return root


@contextlib.contextmanager
def _tmpfs(folder: Path, options: str):
    """A tiny tmpfs mounted at `folder` (root only); yields False where mounting is not possible."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    ).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(folder)], capture_output=True)


# -- item 2: outputs written atomically as they finish; kill and resume ------------------------------


@pytest.mark.slow
def test_killed_batch_resumes_with_nothing_lost_or_duplicated(tmp_path):
    inputs = _thirty_inputs(tmp_path / "in")
    args = ["transcribe", str(inputs), *FAST, "--batch-size", "1", "--format", "jsonl"]
    run_kdasr(*args, "--output-dir", str(tmp_path / "ref"))
    ref = _visible(tmp_path / "ref")
    assert len(ref) == 30 and all(b.strip() for b in ref.values())

    out = tmp_path / "out"
    proc = subprocess.Popen([*KDASR, *args, "--output-dir", str(out)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_visible(out) if out.exists() else {}) < 5:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _visible(out)
    assert 0 < len(partial) < 30, f"{len(partial)} outputs at kill time: the kill did not land mid-batch"
    assert all(ref[name] == data for name, data in partial.items())  # what exists is whole

    resumed = run_kdasr(*args, "--output-dir", str(out), "--skip-existing")
    assert f"{len(partial)} skipped" in resumed.stderr
    assert _visible(out) == ref
    leftovers = [p.name for p in out.rglob(".*") if p.is_file()]
    assert all(name.endswith(".tmp") for name in leftovers)  # only a killed writer's own temp file


@pytest.mark.slow
def test_read_only_output_dir_fails_before_decoding_in_one_line(tmp_path):
    ro = tmp_path / "ro"
    with _tmpfs(ro, "ro,size=64k") as mounted:
        if not mounted:
            if os.geteuid() == 0:  # root ignores permission bits: use a path that cannot be a folder
                (tmp_path / "file").write_text("x")
                ro = tmp_path / "file" / "out"
            else:
                ro.chmod(0o555)
        # a model dir that does not exist: the error must be about the output, found before loading
        for cmd in (
            ["transcribe", str(SAMPLES[0]), "--output-dir", str(ro), "--model", str(tmp_path / "no-model")],
            ["eval", "--manifest", str(ROOT / "eval/samples/manifest.jsonl"), "--hyps", str(ro / "h.jsonl"),
             "--model", str(tmp_path / "no-model")],
        ):
            proc = run_kdasr(*cmd, check=False)
            assert proc.returncode == 1, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: cannot write") and str(ro) in lines[0], lines
            assert "model" not in lines[0]


@pytest.mark.slow
def test_full_disk_stops_cleanly_leaving_only_whole_outputs(tmp_path):
    """Full disk: a 64 KiB tmpfs filled up first (root); elsewhere RLIMIT_FSIZE makes writes fail."""
    inputs = _thirty_inputs(tmp_path / "in")
    out = tmp_path / "full"
    args = ["transcribe", str(inputs), *FAST, "--format", "json", "--output-dir", str(out)]
    with _tmpfs(out, "size=64k") as mounted:
        if mounted:
            with contextlib.suppress(OSError), open(out / ".filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            proc = run_kdasr(*args, check=False)
            reason = "No space left on device"
        else:
            import resource

            def limit():
                resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

            proc = subprocess.run([*KDASR, *args], capture_output=True, text=True, preexec_fn=limit)
            reason = "File too large"
        assert proc.returncode == 1
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and reason in errors[0] and "--skip-existing" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
        for name, data in _visible(out).items():  # nothing partial, nothing empty
            assert name != ".filler" and json.loads(data)


@pytest.mark.slow
def test_same_stem_inputs_get_distinct_outputs_or_a_clear_refusal(tmp_path):
    wave = load_audio(SAMPLES[0])
    a, b = _write(tmp_path / "in/a/x.flac", wave), _write(tmp_path / "in/b/x.flac", wave[: SR * 2])
    run_kdasr("transcribe", str(a), str(b), *FAST, "--output-dir", str(tmp_path / "out"))
    assert sorted(_visible(tmp_path / "out")) == ["a/x.txt", "b/x.txt"]
    first, second = (tmp_path / "out/a/x.txt").read_text(), (tmp_path / "out/b/x.txt").read_text()
    assert first.strip() and second.strip() and first != second  # each its own transcript (text alone)

    _write(tmp_path / "in/a/x.wav", wave)
    proc = run_kdasr("transcribe", str(tmp_path / "in/a"), *FAST, "--output-dir", str(tmp_path / "o2"), check=False)
    assert proc.returncode == 1 and not (tmp_path / "o2").exists()
    line = proc.stderr.strip().splitlines()
    assert len(line) == 1 and "would both write" in line[0] and "x.flac" in line[0] and "x.wav" in line[0]


# -- item 3: inputs people pass, shards, summary, escaping, n-best ---------------------------------


def _paths(stdout: str) -> list[str]:
    return [json.loads(line)["path"] for line in stdout.splitlines()]


@pytest.mark.slow
def test_folder_glob_stdin_manifest_inputs_and_shards(tmp_path):
    folder = tmp_path / "in"
    for k, src in enumerate(SAMPLES[:5]):
        (folder / f"d{k % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / f"d{k % 2}" / src.name)
    (folder / "notes.txt").write_text("not audio, skipped by extension")
    found = sorted(str(p) for p in folder.rglob("*.flac"))
    jsonl = [*FAST, "--format", "jsonl", "--quiet"]

    assert sorted(_paths(run_kdasr("transcribe", str(folder), *jsonl).stdout)) == found
    globbed = run_kdasr("transcribe", str(folder / "**" / "*.flac"), *FAST, "--format", "jsonl")
    assert sorted(_paths(globbed.stdout)) == found
    summary = globbed.stderr.strip().splitlines()[-1]  # not a terminal: no bar, just the summary
    assert "5 inputs: 5 transcribed, 0 failed" in summary and "RTFx" in summary and "h of audio" in summary
    stdin = subprocess.run([*KDASR, "transcribe", "-", *jsonl], input="\n".join(found[:3]) + "\n",
                           capture_output=True, text=True)
    assert stdin.returncode == 0 and _paths(stdin.stdout) == found[:3]

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"id": "whole", "audio": found[0]}) + "\n"
        + json.dumps({"id": "sub/first-second", "audio": found[1], "start": 0.5, "duration": 1.0}) + "\n"
    )
    run_kdasr("transcribe", "--manifest", str(manifest), *FAST, "-f", "jsonl", "--output-dir", str(tmp_path / "mo"))
    rows = {name: json.loads(data) for name, data in _visible(tmp_path / "mo").items()}
    assert sorted(rows) == ["sub/first-second.jsonl", "whole.jsonl"]
    assert rows["whole.jsonl"]["path"] == "whole" and rows["sub/first-second.jsonl"]["duration"] == 1.0

    shards = [_paths(run_kdasr("transcribe", str(folder), *jsonl, "--shard", f"{i}/2").stdout) for i in range(2)]
    assert sorted(shards[0] + shards[1]) == found and len(shards[0]) == 3 and len(shards[1]) == 2
    for bad in ("2/2", "1", "a/b"):
        with pytest.raises(KdasrError, match="--shard"):
            parse_shard(bad)


def test_text_format_escapes_tabs_and_newlines_in_paths(tmp_path):
    wave = load_audio(SAMPLES[0])
    odd = [_write(tmp_path / "tab\there.flac", wave), _write(tmp_path / "new\nline.flac", wave)]
    lines = run_kdasr("transcribe", *map(str, odd), *FAST).stdout.splitlines()
    assert len(lines) == 2
    assert [line.split("\t")[0] for line in lines] == [
        str(tmp_path) + "/tab\\there.flac", str(tmp_path) + "/new\\nline.flac"
    ]


@pytest.mark.slow
def test_json_keeps_nbest_for_segmented_input(tmp_path):
    gap = np.zeros(SR // 2, np.float32)
    long = _write(tmp_path / "long.flac", np.concatenate([x for p in SAMPLES for x in (load_audio(p), gap)]))
    doc = json.loads(run_kdasr(
        "transcribe", str(long), "--model", str(MODEL), "--threads", "1", "--beam", "3", "--nbest", "2",
        "--max-segment", "8", "--format", "json").stdout)[0]
    assert len(doc["segments"]) >= 3
    for seg in doc["segments"]:
        assert 1 <= len(seg["nbest"]) <= 2 and seg["nbest"][0]["text"] == seg["text"]


# -- item 4: silence is not speech ---------------------------------------------------------------


@pytest.mark.slow
def test_silence_and_noise_give_empty_text_and_cuts_stay_in_speech(tmp_path):
    quiet = _write(tmp_path / "near_silence.flac", _noise(20, 0.0005))
    hiss = _write(tmp_path / "white_noise.flac", _noise(20, 0.05, seed=1))
    speech = load_audio(SAMPLES[0])
    mixed = _write(tmp_path / "mixed.flac", np.concatenate([speech, _noise(10, 0.0005, 2), speech]))
    rows = [json.loads(x) for x in run_kdasr(
        "transcribe", str(quiet), str(hiss), str(mixed), *FAST, "--format", "jsonl").stdout.splitlines()]
    assert rows[0]["text"] == "" and rows[0]["segments"] == []
    assert rows[1]["text"] == "" and rows[1]["segments"] == []
    a, b = len(speech) / SR, len(speech) / SR + 10
    assert rows[2]["text"] and rows[2]["segments"]
    for seg in rows[2]["segments"]:  # no piece reaches into the middle of the 10 s pause
        assert seg["end"] <= a + 1.0 or seg["start"] >= b - 1.0, seg
    off = [json.loads(x) for x in run_kdasr(
        "transcribe", str(mixed), *FAST, "--format", "jsonl", "--no-vad").stdout.splitlines()]
    assert off[0]["segments"][0]["start"] == 0.0 and off[0]["segments"][-1]["end"] == rows[2]["duration"]


# -- item 6: tiny inputs never take a batch down ----------------------------------------------------


def test_ten_ms_input_alone_in_a_batch(tmp_path):
    tiny = _write(tmp_path / "ten_ms.flac", load_audio(SAMPLES[0])[:160])
    for vad in ("--vad", "--no-vad"):
        proc = run_kdasr("transcribe", str(tiny), *FAST, "--batch-size", "1", "--format", "jsonl", vad)
        row = json.loads(proc.stdout)
        assert row["path"] == str(tiny) and row["duration"] == 0.01 and "Traceback" not in proc.stderr


def test_onnxruntime_failure_is_that_inputs_failure_not_the_batchs():
    from kdasr.runtime import DecodeOptions, Failure, Result, Transcriber

    t = Transcriber(MODEL, threads=1, vad=False)
    t.min_piece = 0  # switch the padding off: a 10 ms input alone makes onnxruntime fail for real
    good = load_audio(SAMPLES[1])
    out = t.transcribe([good, good[:160], good], DecodeOptions(batch_size=1))
    assert isinstance(out[0], Result) and isinstance(out[2], Result) and out[0].text == out[2].text
    assert isinstance(out[1], Failure) and out[1].reason.startswith("decoding failed:")
    assert "\n" not in out[1].reason


# -- item 10: clipping and level ------------------------------------------------------------------


def test_clipped_and_nearly_silent_inputs_warn_but_are_transcribed(tmp_path):
    wave = load_audio(SAMPLES[2])
    clipped = _write(tmp_path / "clipped.flac", np.clip(wave * 30, -1, 1))
    faint = _write(tmp_path / "faint.flac", wave * 0.002)
    normal = _write(tmp_path / "normal.flac", wave)
    proc = run_kdasr("transcribe", str(clipped), str(faint), str(normal), *FAST)
    assert len(proc.stdout.splitlines()) == 3
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, proc.stderr
    assert str(clipped) in warnings[0] and "clipped" in warnings[0]
    assert str(faint) in warnings[1] and "nearly silent" in warnings[1]
    assert not any(line.startswith("error:") for line in proc.stderr.splitlines())


def test_truncated_wav_warns_and_the_rest_is_transcribed(tmp_path):
    # libsndfile reads a WAV cut short without complaint, reporting the shorter length
    whole = tmp_path / "whole.wav"
    sf.write(whole, load_audio(SAMPLES[2]), SR, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    proc = run_kdasr("transcribe", str(cut), str(whole), *FAST)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(cut) in warnings[0] and "truncated?" in warnings[0], proc.stderr


# -- item 5: long files in bounded memory (structure, not timing) -----------------------------------


@pytest.mark.slow
def test_long_file_is_read_in_blocks_and_decoded_like_in_memory(tmp_path, monkeypatch):
    from kdasr.runtime import DecodeOptions, Transcriber, VadOptions, prepare

    gap = np.zeros(SR // 2, np.float32)
    speech = np.concatenate([x for p in SAMPLES for x in (load_audio(p), gap)])
    path = _write(tmp_path / "long.flac", np.concatenate([speech] * 3))  # ~100 s
    t = Transcriber(MODEL, threads=1, vad=VadOptions())
    opts = DecodeOptions(max_segment_seconds=10)
    in_memory = t.transcribe([str(path)], opts)[0]

    reads: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *a, **k):
        reads.append(frames)
        return real_read(self, frames, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    monkeypatch.setattr(prepare, "KEEP_SECONDS", 20.0)
    monkeypatch.setattr(prepare, "BLOCK_SECONDS", 5.0)
    plan = prepare.prepare(str(path), 0, SR, opts, t._vad, t.vad_options)
    assert plan.wave is None and len(plan.pieces) >= 10  # only the plan is held
    assert reads and all(0 < n <= 5 * SR for n in reads)  # never the whole file at once
    whole = load_audio(path)
    pieces = list(prepare.iter_pieces(plan, SR))
    assert len(pieces) == len(plan.pieces)
    for k, ((a, b), piece) in enumerate(zip(plan.pieces, pieces)):
        assert np.array_equal(piece, whole[a:b]), (k, a, b, len(piece))
    streamed = t.transcribe([str(path)], opts)[0]
    assert [(s.start, s.end, s.text) for s in streamed.segments] == [
        (s.start, s.end, s.text) for s in in_memory.segments
    ]
    # an array over KEEP_SECONDS is kept as it is (there is no file to read again; an AssertionError before)
    from_array = t.transcribe([whole], opts)[0]
    assert [(s.start, s.end, s.text) for s in from_array.segments] == [
        (s.start, s.end, s.text) for s in in_memory.segments
    ]


@pytest.mark.slow
def test_stdin_dash_without_paths_and_no_inputs_are_clear(tmp_path):
    proc = subprocess.run([*KDASR, "transcribe", *FAST], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0 and "nothing to transcribe" in proc.stderr
    proc = run_kdasr("transcribe", str(tmp_path / "*.flac"), *FAST, check=False)
    assert proc.returncode == 1 and "no files match" in proc.stderr and "Traceback" not in proc.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
