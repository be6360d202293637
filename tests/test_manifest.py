"""JSONL manifests: validation errors name line and field; paths round-trip; the validate command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from kdasr.cli.data import data_app
from kdasr.data.manifest import Utterance, read_manifest, validate_manifest, write_manifest
from kdasr.errors import ManifestError

GOOD = {"id": "u1", "audio": "wav/u1.wav", "text": "hello world", "duration": 1.5}


def _write(path, *lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def test_read_resolves_paths_and_keeps_extra(tmp_path):
    m = _write(
        tmp_path / "m.jsonl",
        {**GOOD, "speaker": "spk1", "doc": "d1", "pos": 3, "start": 0.25, "engine": "piper", "augment": None},
        "",
        {"id": "u2", "audio": "/abs/u2.flac", "text": "", "duration": 2},
    )
    a, b = read_manifest(m)
    assert a == Utterance("u1", str(tmp_path / "wav" / "u1.wav"), "hello world", 1.5, "spk1", "d1", 3, 0.25,
                          {"engine": "piper", "augment": None})
    assert b.audio == "/abs/u2.flac" and b.duration == 2.0 and isinstance(b.duration, float)
    assert (b.speaker, b.doc, b.pos, b.start, b.extra) == ("", "", 0, 0.0, {})
    hash(a)  # frozen and hashable despite the extra dict


def test_write_read_roundtrip(tmp_path):
    utts = [
        Utterance("u1", str(tmp_path / "corpus" / "audio" / "u1.flac"), "don't stop", 1.25, "s", "d", 0,
                  extra={"voice": "en_US-x", "split": "train"}),
        Utterance("u2", "/elsewhere/u2.wav", "caf\u00e9 ok", 0.5, start=3.0),
    ]
    m = tmp_path / "corpus" / "train.jsonl"
    write_manifest(m, utts)
    rows = [json.loads(ln) for ln in m.read_text().splitlines()]
    assert rows[0]["audio"] == "audio/u1.flac"  # under the manifest folder -> relative
    assert rows[1]["audio"] == "/elsewhere/u2.wav"  # outside -> absolute
    assert rows[0]["voice"] == "en_US-x" and "extra" not in rows[0]
    assert "café" in m.read_text(encoding="utf-8")  # not \u-escaped
    assert read_manifest(m) == utts
    # the folder moves as a whole and still reads
    os.rename(tmp_path / "corpus", tmp_path / "moved")
    assert read_manifest(tmp_path / "moved" / "train.jsonl")[0].audio == str(tmp_path / "moved" / "audio" / "u1.flac")


def test_sibling_corpus_audio_is_relative_so_the_data_tree_moves_whole(tmp_path):
    """A mix's manifests point into its sibling corpora (data/mix -> data/v2): written as ../v2/..., they
    still read after data/ moves (a mix built through a linked snapshot broke when the link went)."""
    audio = tmp_path / "data" / "v2" / "audio" / "u1.flac"
    m = tmp_path / "data" / "mix" / "dev.jsonl"
    write_manifest(m, [Utterance("u1", str(audio), "x", 1.0)])
    assert json.loads(m.read_text())["audio"] == "../v2/audio/u1.flac"
    os.rename(tmp_path / "data", tmp_path / "moved")
    moved = read_manifest(tmp_path / "moved" / "mix" / "dev.jsonl")[0].audio
    assert moved == str(tmp_path / "moved" / "v2" / "audio" / "u1.flac")


def test_write_relative_audio_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_manifest(tmp_path / "out" / "m.jsonl", [Utterance("u", "out/a.wav", "x", 1.0)])
    assert json.loads((tmp_path / "out" / "m.jsonl").read_text())["audio"] == "a.wav"


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ("{not json", "<json>", "invalid JSON"),
        ("[1, 2]", "<json>", "expected a JSON object, got list"),
        ({"audio": "a.wav", "text": "x", "duration": 1.0}, "id", "missing required field"),
        ({**GOOD, "text": None}, "text", "expected string, got NoneType"),
        ({**GOOD, "duration": "1.5"}, "duration", "expected number, got str"),
        ({**GOOD, "duration": True}, "duration", "expected number, got bool"),
        ({**GOOD, "duration": 0}, "duration", "must be a positive number"),
        ({**GOOD, "duration": -2.0}, "duration", "must be a positive number"),
        ({**GOOD, "pos": -1}, "pos", "must be >= 0"),
        ({**GOOD, "pos": 1.0}, "pos", "expected integer"),
        ({**GOOD, "start": -0.5}, "start", "must be >= 0"),
        ({**GOOD, "id": " "}, "id", "empty id"),
    ],
)
def test_bad_line_names_line_and_field(tmp_path, line, field, reason):
    m = _write(tmp_path / "bad.jsonl", {**GOOD, "id": "u0"}, "", line)
    with pytest.raises(ManifestError) as e:
        read_manifest(m)
    assert (e.value.line, e.value.field) == (3, field)
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{m}:3: field '{field}': ")


def test_duplicate_id_and_missing_file(tmp_path):
    m = _write(tmp_path / "dup.jsonl", GOOD, {**GOOD, "text": "again"})
    with pytest.raises(ManifestError, match=r"dup\.jsonl:2: field 'id': duplicate id 'u1' \(first on line 1\)"):
        read_manifest(m)
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "nope.jsonl")


def test_write_rejects_invalid_utterances(tmp_path):
    m = tmp_path / "w.jsonl"
    with pytest.raises(ManifestError, match="field 'duration'"):
        write_manifest(m, [Utterance("a", "a.wav", "x", 0.0)])
    with pytest.raises(ManifestError, match=r"w\.jsonl:2: field 'id': duplicate"):
        write_manifest(m, [Utterance("a", "a.wav", "x", 1.0), Utterance("a", "b.wav", "y", 1.0)])
    with pytest.raises(ManifestError, match="field 'text': extra key shadows"):
        write_manifest(m, [Utterance("a", "a.wav", "x", 1.0, extra={"text": "y"})])
    with pytest.raises(ManifestError, match="not JSON-serialisable"):
        write_manifest(m, [Utterance("a", "a.wav", "x", 1.0, extra={"obj": object()})])
    assert not m.exists() and os.listdir(tmp_path) == []  # nothing half-written


def test_validate_collects_every_problem(tmp_path):
    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "ok.wav", np.zeros(16000, np.float32), 16000)  # 1.0 s
    m = _write(
        tmp_path / "v.jsonl",
        {**GOOD, "id": "ok", "audio": "wav/ok.wav", "duration": 1.0},
        {**GOOD, "id": "long", "audio": "wav/ok.wav", "duration": 0.8, "start": 0.5},
        {**GOOD, "id": "gone", "audio": "wav/gone.wav"},
        {**GOOD, "id": "caps", "audio": "wav/ok.wav", "text": "Hello World", "duration": 1.0},
        {**GOOD, "id": "num", "audio": "wav/ok.wav", "text": "room 101", "duration": 1.0},
        "oops",
        {**GOOD, "id": "ok"},
    )
    problems = validate_manifest(m)
    assert [p.split(": field")[0] for p in problems] == [f"{m}:{n}" for n in (4, 5, 6, 7)]
    assert "not normalised; expected 'hello world'" in problems[0] and "contains digits" in problems[1]
    with_audio = validate_manifest(m, check_audio=True)
    assert len(with_audio) == 6
    assert any(f"{m}:2: field 'duration': start + duration = 1.30 s exceeds the audio (1.00 s)" == p
               for p in with_audio)
    assert any(p.startswith(f"{m}:3: field 'audio'") and "gone.wav: no such file" in p for p in with_audio)
    assert validate_manifest(_write(tmp_path / "empty.jsonl", "")) == [f"{tmp_path / 'empty.jsonl'}: no utterances"]


def test_cli_validate(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000)
    good = _write(tmp_path / "good.jsonl", {**GOOD, "audio": "a.wav", "duration": 0.5, "speaker": "s1"})
    res = CliRunner().invoke(data_app, ["validate", str(good), "--check-audio"])
    assert res.exit_code == 0, res.output
    assert "ok:" in res.stdout and "1 utterances" in res.stdout and "1 speakers" in res.stdout

    bad = _write(tmp_path / "bad.jsonl", {**GOOD, "duration": -1})
    res = CliRunner().invoke(data_app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert f"{bad}:1: field 'duration'" in res.stdout and "1 problem(s)" in res.stderr
