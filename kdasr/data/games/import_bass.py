"""`kdasr data import-game bass`: Beneath a Steel Sky's voice acting as a transcribed corpus.

The same stages and layout as `import_fotaq` (decode every clip to 16 kHz FLAC, kept when present; pair
it with its line, the reference recogniser where the format leaves it open; text policy; splits;
manifests and `build_info.json`). What differs is the speaker: the game's text and speech files do not
say who speaks a line (see kdasr.data.games.sky), so every clip's speaker is `bass-unknown`. A clip of an
unknown voice cannot be placed on either side of a speaker-held-out split, so Beneath a Steel Sky gives
training data only: all of it goes to train, except whole blocks of 32 neighbouring lines (a scene's
lines) drawn into dev_real_seen; dev_real and test_real stay empty. Torch-free.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kdasr.data.games.import_fotaq import Clip, package_version, paired_utterances, write_corpus
from kdasr.data.games.rnc import RncError
from kdasr.data.games.sky import DATA_DIR, SAMPLE_RATE, SkyDisk, read_lines
from kdasr.data.games.splits import assign_splits
from kdasr.data.manifest import Utterance
from kdasr.errors import KdasrError
from kdasr.io_utils import atomic_open

PACKAGE = "beneath-a-steel-sky"
LICENCE = ("Beneath a Steel Sky licence (Debian package copyright file): free redistribution with the readme and "
           "copyright notices kept and attribution; modification allowed, a modified version marked with a "
           "prominent notice that it is modified (these clips are re-encoded and cut from the game: modified); "
           "no fee for the game itself. Game content (c) Revolution Software Ltd.")
UNKNOWN_SPEAKER = "bass-unknown"


def missing_package(root: Path) -> KdasrError:
    return KdasrError(
        f"{root / DATA_DIR / 'sky.dsk'}: not found; the Debian package {PACKAGE} is not unpacked under {root} "
        f"(run `make setup-data`, or `apt-get download {PACKAGE} && dpkg-deb -x {PACKAGE}_*.deb {root}`)")


def decode_clips(disk: SkyDisk, out: Path, progress, limit: int | None = None
                 ) -> tuple[list[Clip], dict[str, str]]:
    """Every speech file (the first `limit` by number) as 16 kHz mono FLAC under out/audio (kept when there)."""
    import soundfile as sf
    import soxr

    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips, failed = [], {}
    for number in progress(disk.speech_files()[:limit], "decode clips"):
        name = str(number)
        path = audio_dir / f"{name}.flac"
        try:
            if path.exists():
                duration = sf.info(str(path)).duration
            else:
                x = soxr.resample(disk.speech(number), SAMPLE_RATE, 16000)
                with atomic_open(path, "wb") as f:
                    sf.write(f, np.clip(x, -1, 1), 16000, format="FLAC", subtype="PCM_16")
                duration = x.size / 16000
        except (RncError, RuntimeError) as e:
            failed[name] = f"audio does not decode: {e}"
            continue
        clips.append(Clip(name, path, duration))
    return clips, failed


def import_bass(root: Path, out: Path, *, recogniser: bool = True, threads: int = 1, progress=None,
                limit: int | None = None) -> dict:
    """Build the corpus under `out`; returns the build info written to out/build_info.json.
    `limit`: only the first clips by number (a quick check of the pipeline, not a corpus)."""
    started = time.time()
    progress = progress or (lambda items, _label: items)
    folder = root / DATA_DIR
    if not (folder / "sky.dsk").is_file() or not (folder / "sky.dnr").is_file():
        raise missing_package(root)
    disk = SkyDisk(folder)
    lines = read_lines(disk)
    out.mkdir(parents=True, exist_ok=True)
    clips, failed = decode_clips(disk, out, progress, limit)

    def utterance(c: Clip, line, text: str) -> Utterance:
        return Utterance(
            id=f"bass-{c.name}", audio=str(c.audio), text=text, duration=round(c.duration, 3),
            speaker=UNKNOWN_SPEAKER, doc=f"bass-{line.source.replace(' ', '-')}",
            extra={"source": "bass", "line": line.text, "text_number": line.number},
        )

    utts, counts = paired_utterances(clips, lines, failed, out, utterance, recogniser=recogniser,
                                     threads=threads, progress=progress)
    splits, plan = assign_splits(utts, always_train={UNKNOWN_SPEAKER})
    plan["speakers"] = ("unknown: the text and speech files do not name who speaks a line (the game's scripts "
                        "do, mostly through a variable set at run time), so no voice is held out and "
                        "dev_real/test_real are empty; scenes for dev_real_seen are blocks of 32 text numbers")
    return write_corpus(out, splits, plan, {
        "corpus": "bass", "package": PACKAGE, "package_version": package_version(root, PACKAGE),
        "archive": {"version": disk.version, "clips": len(disk.speech_files())}, "licence": LICENCE,
    }, counts, failed, recogniser=recogniser, started=started, threads=threads, limit=limit)
