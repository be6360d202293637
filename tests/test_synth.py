"""The demo-corpus builder: text cleaning/splitting, voices, augmentation and a tiny end-to-end run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kdasr.data import textcorpus as tc
from kdasr.data.signal import make_noise, make_rir, mix_at_snr
from kdasr.data.synthesize import speed_perturb, trim_silence
from kdasr.data.voices import (
    HELDOUT_VARIANTS,
    draw_voice,
    draw_voices,
    espeak_variants,
    is_held_out,
    is_novelty,
)

TOOLS = ("espeak-ng", "flite", "festival", "mod2imp", "Rscript")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason="TTS/text Debian packages not installed"
)


# ---------------------------------------------------------------- text

def test_split_sentences_keeps_abbreviations_and_initials() -> None:
    text = 'Mr. Darcy bowed.  "Indeed!" said J. Smith. St. Paul wrote it? yes. Then they left.'
    assert tc.split_sentences(text) == [
        "Mr. Darcy bowed.", '"Indeed!" said J. Smith.', "St. Paul wrote it? yes.", "Then they left.",
    ]


def test_clean_sentence() -> None:
    assert tc.clean_sentence("God said, \u201cLet there be light,\u201d and there was light.") == (
        "god said let there be light and there was light")
    assert tc.clean_sentence("Don't touch Saul\u2019s well-made 'bread'.") == "don't touch saul's well made bread"
    assert tc.clean_sentence("He was 12 years old when he left.") is None  # digits: dropped
    assert tc.clean_sentence("Amen.") is None  # under 3 words
    assert tc.clean_sentence(" ".join(["word"] * 31)) is None
    assert tc.clean_sentence("Caf\u00e9 & na\u00efve people.") == "cafe and naive people"


def test_osis_notes_become_spaces() -> None:
    raw = 'In the beginning, God<note type="x">Or, the gods</note>created <w lemma="x">the</w> heavens.'
    assert " ".join(tc.clean_osis(raw).split()) == "In the beginning, God created the heavens."


def test_parse_imp_skips_intros_and_joins_verses() -> None:
    imp = "$$$Genesis 0:0\nPreface.\n$$$Genesis 1:0\nIntro.\n$$$Genesis 1:1\nIn the beginning.\n" \
          "$$$Genesis 1:2\nThe earth was empty.\n$$$Genesis 2:1\nThe heavens were finished.\n"
    chapters = tc.parse_imp(imp)
    assert [k for k, _ in chapters] == ["Genesis 1", "Genesis 2"]
    assert " ".join(chapters[0][1].split()) == "In the beginning. The earth was empty."


def test_parse_austen_book() -> None:
    lines = ["SENSE AND SENSIBILITY", "", "CHAPTER 1", "", "The family of _Dashwood_ had long been settled.",
             "VOLUME II", "Chapter 2.", "It was a fine day in the park.", "THE END"]
    docs = tc.parse_austen_book("x", lines)
    assert [d.id for d in docs] == ["austen:x:1", "austen:x:2"]
    assert docs[0].sentences == ("the family of dashwood had long been settled",)
    assert docs[1].sentences == ("it was a fine day in the park",)


def test_assign_split_rule() -> None:
    assert tc.assign_split("web:Psalms 23") == "teacher"
    import hashlib
    for doc_id in ("web:Genesis 1", "austen:emma:3", "web:John 3"):
        h = int(hashlib.sha1(doc_id.encode()).hexdigest()[:8], 16) % 1000
        want = "test" if h < 20 else "dev" if h < 40 else "speech" if h < 115 else "teacher"
        assert tc.assign_split(doc_id) == want


def test_split_documents_removes_leaks() -> None:
    ids = {s: next(f"austen:b:{i}" for i in range(10000) if tc.assign_split(f"austen:b:{i}") == s)
           for s in ("test", "dev", "speech", "teacher")}
    docs = [tc.Document(ids["test"], ("shared line here", "test only line")),
            tc.Document(ids["dev"], ("dev only line",)),
            tc.Document(ids["speech"], ("shared line here", "speech only line")),
            tc.Document(ids["teacher"], ("dev only line",))]
    out = tc.split_documents(docs)
    assert out["speech"][0].sentences == ("speech only line",)
    assert out["teacher"] == []  # its only sentence leaked, so the document is gone


def test_cap_sentences_takes_documents_in_order() -> None:
    docs = [tc.Document("a", ("1", "2", "3")), tc.Document("b", ("4", "5")), tc.Document("c", ("6",))]
    assert tc.cap_sentences(docs, 4) == [tc.Document("a", ("1", "2", "3")), tc.Document("b", ("4",))]
    assert tc.cap_sentences(docs, None) == docs


# ---------------------------------------------------------------- voices

@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_voice_inventory_seen_and_held_out_are_disjoint() -> None:
    installed = espeak_variants()
    assert HELDOUT_VARIANTS <= set(installed)
    rng = np.random.default_rng(0)
    seen = [draw_voice(rng) for _ in range(3000)]
    held = [draw_voice(rng, held_out=True) for _ in range(600)]
    assert not any(is_held_out(v) for v in seen)
    assert all(is_held_out(v) for v in held)
    for v in seen + held:
        if v.engine == "espeak-ng":
            variant = v.name.partition("+")[2]
            assert variant in installed and not is_novelty(variant)
            assert 130 <= v.params["s"] <= 210 and 20 <= v.params["p"] <= 80
    assert {v.speaker for v in seen if v.engine != "espeak-ng"} == {
        "flite:kal16", "flite:awb", "flite:rms", "flite:slt", "festival:kal_diphone",
        "festival:cmu_us_slt_arctic_hts"}
    assert "festival:ked_diphone" in {v.speaker for v in held}
    vs = draw_voices(np.random.default_rng(1), 3)
    assert len({v.speaker for v in vs}) == 3


# ---------------------------------------------------------------- signal processing

@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_mix_at_snr(kind: str, snr: float) -> None:
    rng = np.random.default_rng(3)
    x = (np.sin(np.arange(32000) * 0.05) * 0.3).astype(np.float32)
    noise = make_noise(kind, x.size, rng)
    y = mix_at_snr(x, noise, snr)
    measured = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x).astype(np.float64) ** 2))
    assert abs(measured - snr) < 0.5


def test_noise_colours_have_falling_spectra() -> None:
    rng = np.random.default_rng(0)
    slopes = {}
    for kind in ("white", "pink", "brown"):
        p = np.abs(np.fft.rfft(make_noise(kind, 1 << 16, rng))) ** 2
        lo, hi = p[100:1000].mean(), p[10000:20000].mean()
        slopes[kind] = 10 * np.log10(lo / hi)
    assert abs(slopes["white"]) < 1.5 and 12 < slopes["pink"] < 19 and slopes["brown"] > 28  # 1/f, 1/f^2 power


def test_trim_rir_and_speed() -> None:
    x = np.concatenate([np.zeros(16000), np.ones(800), np.zeros(100)]).astype(np.float32)
    y = trim_silence(x)
    nz = np.flatnonzero(y)
    assert nz[0] == 2400 and y.size - 1 - nz[-1] == 2400
    h = make_rir(0.5, 3.0, np.random.default_rng(0))
    assert h.size == 8000 and abs(np.sum(h**2) - 1) < 1e-6 and np.argmax(np.abs(h)) == 0
    assert abs(speed_perturb(np.zeros(16000, np.float32), 1.1).size - 16000 / 1.1) < 2


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def text_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Extract the text once for all runs in this module (a few seconds)."""
    folder = tmp_path_factory.mktemp("text")
    tc.load_documents(folder)
    return folder


def _build(out: Path, cache: Path, seed: int = 0) -> dict:
    from kdasr.data.synth import synth_corpus

    (out / "text").mkdir(parents=True, exist_ok=True)
    for f in cache.iterdir():
        shutil.copy(f, out / "text" / f.name)
    return synth_corpus(out, seed=seed, jobs=2, voices_per_sentence=2, max_train_sentences=6,
                        max_eval_sentences=3, progress=False, version=1)


@pytest.fixture(scope="module")
def corpus(text_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    return out, _build(out, text_cache)


SPLITS = ("train", "dev", "test", "test_heldout")


@pytest.mark.slow
@needs_tools
def test_end_to_end_manifests_and_audio(corpus: tuple[Path, dict]) -> None:
    from kdasr.data.manifest import read_manifest
    from kdasr.data.voices import Voice

    out, summary = corpus
    utts = {s: read_manifest(out / f"{s}.jsonl") for s in SPLITS}
    assert [len(utts[s]) for s in SPLITS] == [12, 3, 3, 3]
    assert summary["splits"]["train"]["utterances"] == 12
    for s in SPLITS:
        for u in utts[s]:
            info = sf.info(u.audio)
            assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            assert abs(info.frames / 16000 - u.duration) < 1e-3
            assert u.extra["engine"] in ("espeak-ng", "flite", "festival")
            assert u.extra["voice"].startswith(u.speaker)
            assert "augment" in u.extra and u.text and u.doc
            engine, name = u.speaker.split(":", 1)
            held = is_held_out(Voice(engine, name))
            assert held == (s == "test_heldout"), (s, u.speaker)
            if s != "train":
                assert u.extra["augment"] == ""
    # each train sentence is spoken by 2 different voices
    by_sentence: dict[tuple[str, int], set[str]] = {}
    for u in utts["train"]:
        by_sentence.setdefault((u.doc, u.pos), set()).add(u.speaker)
    assert len(by_sentence) == 6 and all(len(v) == 2 for v in by_sentence.values())
    # no document in two splits (test_heldout repeats test by design)
    docs = {s: {u.doc for u in utts[s]} for s in ("train", "dev", "test")}
    with open(out / "teacher.jsonl", encoding="utf-8") as f:
        docs["teacher"] = {json.loads(line)["doc"] for line in f}
    names = list(docs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not docs[a] & docs[b], (a, b)
    assert docs["test"] == {u.doc for u in utts["test_heldout"]}
    teacher_lines = (out / "teacher.txt").read_text(encoding="utf-8").splitlines()
    assert sum(1 for x in teacher_lines if x) == summary["teacher"]["sentences"] > 1000
    # a blank line between documents (what `kdasr teacher --help` promises), none inside one
    assert teacher_lines.count("") == summary["teacher"]["documents"] - 1


@pytest.mark.slow
@needs_tools
def test_end_to_end_deterministic_and_resumable(corpus: tuple[Path, dict], text_cache: Path,
                                                tmp_path: Path) -> None:
    out, _ = corpus
    other = tmp_path / "again"
    _build(other, text_cache)
    for s in SPLITS:
        assert (out / f"{s}.jsonl").read_text() == (other / f"{s}.jsonl").read_text(), s
    # resume: delete one file, rerun, only that one is re-created
    victim = sorted((other / "audio" / "train").glob("*.flac"))[3]
    before = {p: p.stat().st_mtime_ns for p in (other / "audio").rglob("*.flac") if p != victim}
    victim.unlink()
    summary = _build(other, text_cache)
    assert victim.exists()
    assert summary["splits"]["train"]["synthesized"] == 1
    assert all(summary["splits"][s]["synthesized"] == 0 for s in SPLITS[1:])
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert (out / "train.jsonl").read_text() == (other / "train.jsonl").read_text()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_a_chunk_failing_unexpectedly_is_one_error_line_that_says_rerun(tmp_path: Path) -> None:
    """A worker's unexpected failure (here: the clip's folder is a file) reaches the user as one line naming
    the utterances and the cause, not a traceback from the pool."""
    from kdasr.data.synth import _render
    from kdasr.data.synthesize import RenderJob
    from kdasr.data.voices import Voice
    from kdasr.errors import KdasrError

    (tmp_path / "audio").write_text("not a folder")
    job = RenderJob("u1", "hello there", Voice("espeak-ng", "en-us"), tmp_path / "audio" / "u1.flac")
    with pytest.raises(KdasrError, match=r"rendering u1 \.\. u1 .* failed: .*Error: .*rerun the same command"):
        _render([job], None, lambda n: None)
