"""The real-speech corpus from Flight of the Amazon Queen's voice acting (kdasr data import-game).

The archive is the real Debian package, unpacked by `make setup-data` under data/packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_kdasr

from kdasr.data.games.pairing import nearest_line
from kdasr.data.games.queen import ARCHIVE, QueenArchive, read_lines, spoken_segments
from kdasr.data.games.splits import assign_splits
from kdasr.data.games.text_policy import clean_line
from kdasr.data.manifest import Utterance, read_manifest

ROOT = Path(__file__).resolve().parents[1] / "data/packages/flight-of-the-amazon-queen"


@pytest.fixture(scope="module")
def archive() -> QueenArchive:
    if not (ROOT / ARCHIVE).is_file():
        pytest.fail(f"{ROOT / ARCHIVE} is missing: `make setup-data` downloads the game package")
    return QueenArchive(ROOT / ARCHIVE)


def test_lines_split_into_segments_at_stage_commands():
    # each *XX command ends a spoken segment; *XY carries coordinates; GD/GM (grab) are not spoken
    assert spoken_segments("Hello there.*FLWho are you?") == [(0, "Hello there."), (1, "Who are you?")]
    assert spoken_segments("Go.*XY00(237,112)Now!") == [(0, "Go."), (1, "Now!")]
    assert spoken_segments("Take it.*GDThanks.") == [(1, "Thanks.")]
    assert spoken_segments("I don't see anything special*24") == [(0, "I don't see anything special")]


def test_archive_pairs_clips_with_the_lines_they_speak(archive):
    lines = read_lines(archive)
    clips = {n[:-3] for n in archive.names(".SB")}
    assert len(clips) == 6745
    exact = [c for c in clips if len(lines.get(c, [])) == 1]
    assert len(exact) >= 6500  # measured 6,584: the rest go to the recogniser
    # dialogue: talk key 02, line 0x0001, the person (Anderson), segment 2; checked by listening
    (line,) = lines["020001P2"]
    assert (line.text, line.speaker, line.source) == ("You couldn't pilot your way out of a paper bag.",
                                                      "Anderson", "AND1.DOG")
    (line,) = lines["C18C_381"]  # cutaway C18C, object 38, segment 1
    assert line.text == "Why?" and line.source == "C18C.CUT"
    assert all(ln.speaker == "Joe" for c, group in lines.items() if c.startswith("JOE") for ln in group)


def test_text_policy_drops_what_is_not_spoken_as_written():
    assert clean_line("You couldn't pilot your way out of a paper bag.") == (
        "you couldn't pilot your way out of a paper bag", "")
    assert clean_line("Super Soldier Treatment^_.")[0] == "super soldier treatment"
    for raw in ("<gulp> ", "0", "He discovered the island in 1844.", "   "):
        text, reason = clean_line(raw)
        assert text is None and reason


def test_nearest_line_is_accepted_only_within_the_stated_distance():
    lines = ["you couldn't pilot your way out of a paper bag", "why", "the chief wants to see you"]
    assert nearest_line("you couldn't pilot your way out of a paper back", lines).index == 0
    miss = nearest_line("a completely different sentence", lines)
    assert miss.index == -1 and miss.cer > 0.25


def test_splits_hold_out_whole_speakers():
    utts = [Utterance(f"{s}-{i}", "a.flac", "hello", 40.0, speaker=s, doc=f"scene-{i % 7}")
            for s in [f"voice-{k}" for k in range(12)] + ["fotaq-joe"] for i in range(60)]
    splits, plan = assign_splits(utts)
    speakers = {name: {u.speaker for u in us} for name, us in splits.items()}
    assert not speakers["test_real"] & speakers["dev_real"]
    for held in ("test_real", "dev_real"):
        assert len(speakers[held]) >= 3 and not speakers[held] & (speakers["train"] | speakers["dev_real_seen"])
        assert sum(u.duration for u in splits[held]) >= 30 * 60
    assert "fotaq-joe" in speakers["train"]
    assert sum(len(v) for v in splits.values()) == len(utts)
    assert assign_splits(list(reversed(utts)))[1]["held_out"] == plan["held_out"]  # order-blind


@pytest.mark.slow
def test_import_writes_manifests_and_build_info(tmp_path):
    out = tmp_path / "fotaq"
    args = ("data", "import-game", "fotaq", str(ROOT), str(out), "--no-recogniser", "--limit", "800")
    proc = run_kdasr(*args)
    assert "test_real" in proc.stdout
    info = json.loads((out / "build_info.json").read_text())
    assert info["package_version"] == "1.0.0-9" and "no fee" in info["licence"]
    assert info["archive"]["clips"] == 6745 and info["limit"] == 800
    assert info["counts"]["paired: format"] >= 700
    total = 0
    for split in ("train", "dev_real_seen", "dev_real", "test_real"):
        utts = read_manifest(out / f"{split}.jsonl")
        total += len(utts)
        assert all(u.speaker.startswith("fotaq-") and u.text and 0.3 <= u.duration <= 30 for u in utts)
    assert total == sum(v for k, v in info["counts"].items() if k.startswith("paired"))
    held = set(info["split_plan"]["held_out"]["test_real"])
    assert not held & {u.speaker for u in read_manifest(out / "train.jsonl")}
    report = run_kdasr("data", "report", str(out)).stdout
    assert "| test_real |" in report and "paired: format" in report and "no fee" in report
    # a second run reuses the decoded clips and writes the same manifests
    before = (out / "train.jsonl").read_bytes()
    run_kdasr(*args)
    assert (out / "train.jsonl").read_bytes() == before


def test_missing_package_is_one_line_naming_it(tmp_path):
    proc = run_kdasr("data", "import-game", "fotaq", str(tmp_path), str(tmp_path / "out"), check=False)
    assert proc.returncode == 1
    assert "flight-of-the-amazon-queen" in proc.stderr and "make setup-data" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_kdasr("data", "import-game", "monkey-island", str(tmp_path), str(tmp_path / "out"), check=False)
    assert proc.returncode == 1 and "unknown game" in proc.stderr


def _corpus(folder: Path, prefix: str, n: int, seconds: float = 1.0) -> None:
    import numpy as np
    import soundfile as sf

    from kdasr.data.manifest import write_manifest

    (folder / "audio").mkdir(parents=True)
    t = np.arange(int(16000 * seconds)) / 16000
    utts = []
    for i in range(n):
        path = folder / "audio" / f"{prefix}{i}.flac"
        sf.write(path, 0.3 * np.sin(2 * np.pi * (300 + 900 * i) * t) + 0.1 * np.sin(2 * np.pi * 7000 * t), 16000)
        utts.append(Utterance(f"{prefix}{i}", str(path), "hello there", seconds, speaker=f"{prefix}-s{i % 2}"))
    for split in ("train", "dev"):
        write_manifest(folder / f"{split}.jsonl", utts)


def _noise_packages(root: Path) -> Path:
    """The two noise packages' layout with a few recorded-like files (the real ones are a 167 MB download
    that CI does not make): one CC0 effect, one effect under another licence, two voice packs."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    samples = root / "sonic-pi-samples/usr/share/sonic-pi/samples"
    samples.mkdir(parents=True)
    for name in ("ambi_drone.flac", "loop_amen.flac"):
        sf.write(samples / name, 0.2 * rng.standard_normal(8000), 16000)
    doc = root / "sonic-pi-samples/usr/share/doc/sonic-pi-samples"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: MIT\n\nFiles: etc/samples/ambi_drone.flac\n"
                                   "Copyright: 2013 someone\nLicense: CC0\n\nFiles: etc/samples/loop_amen.flac\n"
                                   "License: CC-BY-SA-4.0\n")
    for pack in ("British", "Default_pl"):
        voices = root / f"hedgewars-data/usr/share/games/hedgewars/Data/Sounds/voices/{pack}"
        voices.mkdir(parents=True)
        sf.write(voices / "Hello.ogg", 0.2 * np.sin(np.arange(8000) / 5.0), 16000)
    return root


def test_noise_bank_takes_only_cc0_effects_and_english_voice_packs(tmp_path):
    from kdasr.data.real_noise import load_noise_bank

    bank = load_noise_bank(_noise_packages(tmp_path))
    assert bank.sources["sfx"]["files"] == 1 and bank.sources["babble"]["voice_packs"] == ["British"]
    import numpy as np

    x = bank.sample("babble", 20000, np.random.default_rng(1))
    assert x.shape == (20000,) and np.abs(x).max() > 0


@pytest.mark.slow
def test_mix_band_limits_synthetic_and_augments_real(tmp_path):
    import numpy as np

    from kdasr.audio import load_audio

    _corpus(tmp_path / "synth", "s", 8)
    (tmp_path / "synth/teacher.txt").write_text("synthetic teacher text\n")
    _corpus(tmp_path / "real", "r", 4)
    packages = _noise_packages(tmp_path / "packages")
    out = tmp_path / "mix"
    args = ("data", "mix", str(out), "--synthetic", str(tmp_path / "synth"), "--real", str(tmp_path / "real"),
            "--packages", str(packages), "--band-limit-share", "0.5", "--real-copies", "2")
    run_kdasr(*args)
    train = read_manifest(out / "train.jsonl")
    limited = [u for u in train if u.extra.get("bandlimit_hz")]
    augmented = [u for u in train if u.extra.get("noise")]
    assert 1 <= len(limited) <= 7 and len(augmented) == 8 and len(train) == 8 + 4 + 8
    x = load_audio(limited[0].audio)
    spectrum = np.abs(np.fft.rfft(x))
    assert spectrum[int(6000 * x.size / 16000):].max() < 0.01 * spectrum.max()  # the 7 kHz tone is gone
    clean = load_audio(tmp_path / "real/audio/r0.flac")
    assert not np.allclose(load_audio(augmented[0].audio), clean, atol=1e-3)
    info = json.loads((out / "build_info.json").read_text())
    assert info["noise_sources"]["sfx"]["licence"].startswith("CC0")
    assert (out / "dev.jsonl").is_file()
    report = run_kdasr("data", "report", str(out)).stdout  # the mix's own report (a traceback before)
    assert "real share" in report and "| train | 20 |" in report and "sonic-pi-samples" in report
    # teacher.txt: the synthetic text, and no real line, since the real dev set holds the same text
    assert "plus 0 lines of the real corpora's train split" in report and "4 train lines left out" in report
    assert (out / "teacher.txt").read_text() == "synthetic teacher text\n\n"
    before = (out / "train.jsonl").read_bytes()
    run_kdasr(*args)  # deterministic: a second build writes the same corpus
    assert (out / "train.jsonl").read_bytes() == before


@pytest.mark.slow
def test_data_sample_draws_the_same_random_sample_for_a_seed(tmp_path):
    _corpus(tmp_path / "c", "u", 10)
    a, b, c = (tmp_path / f"{k}.jsonl" for k in "abc")
    run_kdasr("data", "sample", str(a), str(tmp_path / "c/train.jsonl"), "-n", "4", "--seed", "3")
    run_kdasr("data", "sample", str(b), str(tmp_path / "c/train.jsonl"), "-n", "4", "--seed", "3")
    run_kdasr("data", "sample", str(c), str(tmp_path / "c/train.jsonl"), "-n", "4", "--seed", "4")
    ids = [[u.id for u in read_manifest(p)] for p in (a, b, c)]
    assert ids[0] == ids[1] != ids[2] and len(set(ids[0])) == 4


def test_recogniser_pairs_refuse_clips_whisper_hears_no_speech_in(tmp_path):
    """A sound effect whisper hallucinates "you" on matches the line "You!" exactly: with a no-speech
    probability over MAX_NO_SPEECH it is dropped and counted, however well the text matches."""
    from collections import Counter

    from kdasr.data.games.import_fotaq import MAX_NO_SPEECH, Clip, Heard, pair
    from kdasr.data.games.queen import Line

    clips = [Clip(n, tmp_path / f"{n}.flac", 3.0) for n in ("1006SSSS", "MIK_0109", "ONELINE")]
    lines = {"ONELINE": [Line("ONELINE", "Hello there.", "Joe", "A.DOG")],
             "other": [Line("other", "You!", "Bob", "B.DOG"), Line("other", "Be gentle with me!", "Mike", "C.DOG")]}
    heard = {"1006SSSS": Heard("you", MAX_NO_SPEECH + 0.05), "MIK_0109": Heard("be gentle with me", 0.13)}
    counts = Counter()
    paired = pair(clips, lines, heard, counts)
    assert paired["ONELINE"][1] == "format" and paired["MIK_0109"] == (lines["other"][1], "recogniser")
    assert "1006SSSS" not in paired
    assert sum(v for k, v in counts.items() if "no speech" in k) == 1


def test_data_report_on_an_unknown_build_record_is_one_line(tmp_path):
    (tmp_path / "build_info.json").write_text('{"corpus": "v9"}')
    proc = run_kdasr("data", "report", str(tmp_path), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "not a corpus build record" in proc.stderr and str(tmp_path) in proc.stderr
