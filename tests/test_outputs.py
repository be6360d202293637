"""Whisper-style outputs (issue 30 item 8): `-f txt,vtt,srt,tsv,json,all` with one file per format per
input, per-file txt holding the transcript alone and per-file json one object, `--language` checked
against the model's, and a server `prompt` accepted and ignored with a note. Shipped model, real clips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_kdasr

ROOT = Path(__file__).resolve().parents[1]
CLIPS = [ROOT / "eval" / "samples" / n for n in ("web_matthew_6-026.flac", "web_romans_8-037-h.flac")]
FAST = ["--threads", "1", "-q"]


@pytest.mark.slow
def test_all_writes_one_file_per_format_per_input(tmp_path):
    out = tmp_path / "out"
    run_kdasr("transcribe", *map(str, CLIPS), "-f", "all", "--output-dir", str(out), "--language", "en", *FAST)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{c.stem}.{ext}" for c in CLIPS for ext in ("txt", "vtt", "srt", "tsv", "json"))
    doc = json.loads((out / f"{CLIPS[0].stem}.json").read_text())
    assert isinstance(doc, dict) and doc["path"] == str(CLIPS[0]) and len(doc["text"].split()) > 5
    assert (out / f"{CLIPS[0].stem}.txt").read_text() == doc["text"] + "\n"  # the transcript alone
    tsv = (out / f"{CLIPS[0].stem}.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\ttext" and tsv[1].split("\t")[2] == doc["text"]
    seg = doc["segments"][0]
    assert tsv[1].split("\t")[:2] == [str(round(seg["start"] * 1000)), str(round(seg["end"] * 1000))]
    assert (out / f"{CLIPS[0].stem}.vtt").read_text().startswith("WEBVTT\n\n")
    # resume: an input is done when all its formats are there
    (out / f"{CLIPS[1].stem}.srt").unlink()
    again = run_kdasr("transcribe", *map(str, CLIPS), "-f", "txt,srt", "--output-dir", str(out), "--skip-existing",
                      "--threads", "1")
    assert "1 skipped" in again.stderr and (out / f"{CLIPS[1].stem}.srt").is_file()


@pytest.mark.slow
def test_txt_on_stdout_and_format_errors(tmp_path):
    one = run_kdasr("transcribe", str(CLIPS[0]), "-f", "txt", *FAST).stdout
    assert one.count("\n") == 1 and str(CLIPS[0]) not in one and len(one.split()) > 5
    several = run_kdasr("transcribe", str(CLIPS[0]), "-f", "txt,srt", check=False)
    assert several.returncode == 2 and "need --output-dir" in several.stderr
    unknown = run_kdasr("transcribe", str(CLIPS[0]), "-f", "docx", check=False)
    assert unknown.returncode == 2 and "unknown format 'docx'" in unknown.stderr


@pytest.mark.slow
@pytest.mark.parametrize("language, ok", [("en", True), ("English", True), ("de", False), ("fr", False)])
def test_language_is_the_models_or_refused(language, ok):
    proc = run_kdasr("transcribe", str(CLIPS[0]), "--language", language, *FAST, check=False)
    if ok:
        assert proc.returncode == 0 and proc.stdout.strip()
    else:
        assert proc.returncode == 2 and not proc.stdout
        assert f"transcribes 'en' only, not '{language}'" in " ".join(proc.stderr.split())


@pytest.mark.slow
def test_server_prompt_is_accepted_and_noted():
    pytest.importorskip("fastapi")
    from tests.test_serve import server

    audio = CLIPS[0].read_bytes()
    with server() as (_, c):
        plain = c.transcribe_form(audio, response_format="json")
        prompted = c.transcribe_form(audio, response_format="json", prompt="Kdasr, BERT")
        text = c.transcribe_form(audio, response_format="text", prompt="Kdasr, BERT")
    assert plain.status == prompted.status == text.status == 200, prompted.body
    assert prompted.json()["text"] == plain.json()["text"] and "warnings" not in plain.json()
    assert prompted.json()["warnings"] == ["prompt ignored: this model has no prompt conditioning"]
    assert text.headers["x-kdasr-warning"].startswith("prompt ignored")
    assert text.body.decode().strip() == plain.json()["text"]
