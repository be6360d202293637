"""The real-speech corpus from Beneath a Steel Sky's voice acting (kdasr data import-game bass).

The game data is the real Debian package, unpacked by `make setup-data` under data/packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_kdasr

from kdasr.data.games.rnc import RncError, crc16, unpack
from kdasr.data.games.sky import DATA_DIR, SAMPLE_RATE, SkyDisk, read_lines, section_texts, speech_file
from kdasr.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1] / "data/packages/beneath-a-steel-sky"


@pytest.fixture(scope="module")
def disk() -> SkyDisk:
    if not (ROOT / DATA_DIR / "sky.dsk").is_file():
        pytest.fail(f"{ROOT / DATA_DIR / 'sky.dsk'} is missing: `make setup-data` downloads the game package")
    return SkyDisk(ROOT / DATA_DIR)


def test_rnc_unpacks_and_checks_both_checksums(disk):
    assert crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value
    offset, size, _ = disk.entries[50007]
    packed = disk._data[offset + 22:offset + size]  # after the file header: the RNC block
    out = unpack(packed)
    assert len(out) == 12607 and out[:4] == b"\x80\x80\x80\x80"  # unsigned 8-bit silence opens the clip
    broken = bytearray(packed)
    broken[100] ^= 0xFF
    with pytest.raises(RncError, match="CRC"):
        unpack(bytes(broken))
    with pytest.raises(RncError):
        unpack(b"not packed at all")


def test_text_decodes_from_the_games_huffman_code(disk):
    texts = section_texts(disk, 0)
    assert texts[1] == "Foster" and texts[7] == "I had to INSPECT it."
    assert section_texts(disk, 5)[5 << 12 | 1] == "I think you need a new NAME, Joey."


def test_clips_pair_with_lines_by_their_numbers(disk):
    assert disk.version == "0.0372"
    assert len(disk.speech_files()) == 3491
    lines = read_lines(disk)
    assert len(lines) == 3428  # measured: the other 63 clips lie past their section's last text line
    assert speech_file(5 << 12 | 1) == 50000 + 4530 + 1
    (line,) = lines["50020"]  # checked by listening (whisper tiny.en hears the same words)
    assert line.text == "They're a BREEDIN' ground for MICRO-ORGASMS!" and line.speaker == "unknown"
    x = disk.speech(50007)
    assert x.dtype == np.float32 and x.size == 12607 and abs(x.size / SAMPLE_RATE - 1.14) < 0.01
    assert np.abs(x).max() > 0.3  # speech, not silence


@pytest.mark.slow
def test_whisper_hears_the_paired_lines(disk):
    pytest.importorskip("faster_whisper")
    import soxr
    from rapidfuzz.distance import Levenshtein

    from kdasr.data.games.text_policy import clean_line
    from kdasr.eval.reference import load_whisper, normalise_hypothesis

    lines = read_lines(disk)
    model = load_whisper(1, 1)
    for clip in ("51214", "53684", "54783"):  # three sections
        x = soxr.resample(disk.speech(int(clip)), SAMPLE_RATE, 16000)
        segments, _ = model.transcribe(x, language="en", beam_size=1, condition_on_previous_text=False)
        hyp = normalise_hypothesis(" ".join(s.text for s in segments))
        ref = clean_line(lines[clip][0].text)[0]
        assert Levenshtein.distance(hyp, ref) / len(ref) < 0.25, (clip, ref, hyp)


@pytest.mark.slow
def test_import_writes_train_only_manifests_and_build_info(tmp_path):
    out = tmp_path / "bass"
    args = ("data", "import-game", "bass", str(ROOT), str(out), "--no-recogniser", "--limit", "60")
    proc = run_kdasr(*args)
    assert "train" in proc.stdout
    info = json.loads((out / "build_info.json").read_text())
    assert info["corpus"] == "bass" and info["package_version"] == "0.0372-8"
    assert info["archive"] == {"version": "0.0372", "clips": 3491} and "Revolution" in info["licence"]
    assert info["counts"]["paired: format"] >= 50
    assert info["splits"]["dev_real"]["clips"] == info["splits"]["test_real"]["clips"] == 0
    total = 0
    for split in ("train", "dev_real_seen"):
        utts = read_manifest(out / f"{split}.jsonl")
        total += len(utts)
        assert all(u.speaker == "bass-unknown" and u.text and 0.3 <= u.duration <= 30 for u in utts)
    assert total == sum(v for k, v in info["counts"].items() if k.startswith("paired"))
    seen = {u.doc for u in read_manifest(out / "dev_real_seen.jsonl")}
    assert seen and not seen & {u.doc for u in read_manifest(out / "train.jsonl")}  # whole blocks
    report = run_kdasr("data", "report", str(out)).stdout
    assert "| train |" in report and "paired: format" in report and "Revolution" in report
    before = (out / "train.jsonl").read_bytes()
    run_kdasr(*args)  # resumable: reuses the decoded clips, writes the same manifests
    assert (out / "train.jsonl").read_bytes() == before


def test_missing_package_is_one_line_naming_it(tmp_path):
    proc = run_kdasr("data", "import-game", "bass", str(tmp_path), str(tmp_path / "out"), check=False)
    assert proc.returncode == 1
    assert "beneath-a-steel-sky" in proc.stderr and "make setup-data" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_damaged_game_data_is_one_line_naming_the_file(tmp_path):
    folder = tmp_path / DATA_DIR
    folder.mkdir(parents=True)
    (folder / "sky.dnr").write_bytes((ROOT / DATA_DIR / "sky.dnr").read_bytes())
    (folder / "sky.dsk").write_bytes(b"\0" * 1000)  # a cut download
    proc = run_kdasr("data", "import-game", "bass", str(tmp_path), str(tmp_path / "out"), check=False)
    assert proc.returncode == 1 and "sky.dsk" in proc.stderr and "truncated" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
