"""Kaldi data dir and LibriSpeech importers on tiny trees built here, plus their CLI commands."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from kdasr.cli.data import data_app
from kdasr.data.kaldi import import_kaldi_dir
from kdasr.data.librispeech import import_librispeech
from kdasr.data.manifest import read_manifest
from kdasr.errors import KdasrError, TextError


def _wav(path, seconds, sr=16000, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), np.float32), sr, format=fmt)
    return path


def _kaldi(tmp_path, files: dict[str, str]):
    d = tmp_path / "data" / "train"
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_text(body)
    return d


def test_kaldi_without_segments(tmp_path, monkeypatch):
    _wav(tmp_path / "audio" / "a.wav", 1.5)
    _wav(tmp_path / "data" / "train" / "b.flac", 0.75, sr=8000)
    d = _kaldi(tmp_path, {
        "wav.scp": f"a {tmp_path / 'audio' / 'a.wav'}\nb b.flac\n",  # b: relative to the data dir
        "text": "a HELLO, World!\nb Don't\n",
        "utt2spk": "a spk1\nb spk2\n",
    })
    monkeypatch.chdir(tmp_path / "audio")
    a, b = import_kaldi_dir(d)
    assert (a.id, a.audio, a.text, a.speaker, a.start) == ("a", str(tmp_path / "audio" / "a.wav"), "hello world",
                                                           "spk1", 0.0)
    assert a.duration == pytest.approx(1.5) and b.duration == pytest.approx(0.75)
    assert (b.audio, b.text, b.speaker) == (str(d / "b.flac"), "don't", "spk2")


def test_kaldi_with_segments(tmp_path):
    rec = _wav(tmp_path / "rec1.wav", 10.0)
    d = _kaldi(tmp_path, {
        "wav.scp": f"rec1 {rec}\n",
        "text": "s2 second part\ns1 first part\ns3\n",
        "segments": "s1 rec1 0.5 2.0\ns2 rec1 3.0 5.25\ns3 rec1 8.0 -1\n",
    })
    s2, s1, s3 = import_kaldi_dir(d)  # text order
    assert (s1.start, s1.duration, s1.pos, s1.doc) == (0.5, 1.5, 0, "rec1")
    assert (s2.start, s2.duration, s2.pos, s2.text) == (3.0, 2.25, 1, "second part")
    assert (s3.duration, s3.pos, s3.text, s3.speaker) == (pytest.approx(2.0), 2, "", "")


def test_kaldi_pipe_is_refused(tmp_path):
    d = _kaldi(tmp_path, {"wav.scp": "r1 sph2pipe -f wav /x/r1.sph |\n", "text": "r1 hi\n"})
    with pytest.raises(KdasrError, match=r"wav\.scp:1: piped commands in wav\.scp are not supported; convert"):
        import_kaldi_dir(d)


def test_kaldi_errors(tmp_path):
    rec = _wav(tmp_path / "r.wav", 1.0)
    with pytest.raises(KdasrError, match="missing text"):
        import_kaldi_dir(_kaldi(tmp_path / "1", {"wav.scp": f"u {rec}\n"}))
    d = _kaldi(tmp_path / "2", {"wav.scp": f"u1 {rec}\nu2 {rec}\nu3 {rec}\n",
                                "text": "u1 fine\nu2 in 1984\nu3 at 9 am\n"})
    with pytest.raises(TextError, match=r"2 transcript\(s\) contain digits") as e:
        import_kaldi_dir(d)
    assert "u2 ('in 1984')" in str(e.value) and "u3" in str(e.value) and "u1" not in str(e.value)
    d = _kaldi(tmp_path / "3", {"wav.scp": f"u1 {rec}\n", "text": "u1 a\nu9 b\n"})
    with pytest.raises(KdasrError, match="no audio for utterance 'u9'"):
        import_kaldi_dir(d)
    d = _kaldi(tmp_path / "4", {"wav.scp": f"r {rec}\n", "text": "s a\n", "segments": "s r 2.0 1.0\n"})
    with pytest.raises(KdasrError, match="segment 's' has end 1.0 <= start 2.0"):
        import_kaldi_dir(d)
    with pytest.raises(KdasrError, match="not a directory"):
        import_kaldi_dir(tmp_path / "nowhere")


def _librispeech(root):
    chapters = {("19", "198"): ["IN THE MORNING", "HE SAID DON'T"], ("26", "495"): ["YES"]}
    for (spk, ch), lines in chapters.items():
        folder = root / spk / ch
        trans = [f"{spk}-{ch}-{i:04d} {t}" for i, t in enumerate(lines)]
        for i, _ in enumerate(lines):
            _wav(folder / f"{spk}-{ch}-{i:04d}.flac", 0.5 + i, fmt="FLAC")
        (folder / f"{spk}-{ch}.trans.txt").write_text("\n".join(trans) + "\n")
    return root


def test_librispeech(tmp_path):
    root = _librispeech(tmp_path / "LibriSpeech" / "dev-clean")
    utts = import_librispeech(root)
    assert [u.id for u in utts] == ["19-198-0000", "19-198-0001", "26-495-0000"]
    u = utts[1]
    assert (u.text, u.speaker, u.doc, u.pos) == ("he said don't", "19", "19-198", 1)
    assert u.audio == str(root / "19" / "198" / "19-198-0001.flac")
    assert u.duration == pytest.approx(1.5)
    with pytest.raises(KdasrError, match=r"no <spk>/<chapter>/.*found \(pass one split folder"):
        import_librispeech(tmp_path / "LibriSpeech")


def test_librispeech_missing_flac(tmp_path):
    root = _librispeech(tmp_path / "ls")
    (root / "26" / "495" / "26-495-0000.flac").unlink()
    with pytest.raises(KdasrError, match=r"26-495-0000\.flac: no such file"):
        import_librispeech(root)


def test_cli_imports(tmp_path):
    root = _librispeech(tmp_path / "ls")
    out = tmp_path / "corpus" / "dev.jsonl"
    res = CliRunner().invoke(data_app, ["import-librispeech", str(root), str(out)])
    assert res.exit_code == 0, res.output
    assert "3 utterances" in res.stdout and "2 speakers" in res.stdout
    assert [u.pos for u in read_manifest(out)] == [0, 1, 0]

    d = _kaldi(tmp_path, {"wav.scp": "r1 cat r1.wav |\n", "text": "r1 hi\n"})
    res = CliRunner().invoke(data_app, ["import-kaldi", str(d), str(tmp_path / "k.jsonl")])
    assert res.exit_code == 1 and not (tmp_path / "k.jsonl").exists()
    assert res.stderr.startswith("error: ") and "pipes" not in res.stdout and "piped commands" in res.stderr
    assert res.stderr.count("\n") == 1
