"""Recorded sound for augmentation: sound effects (noise) and unlabelled voices (babble) from Debian
packages unpacked under data/packages (`make setup-noise`). Torch-free.

- `sonic-pi-samples`: only the files its DEP-5 copyright file licenses CC0 (the package mixes licences);
- `hedgewars-data` voice packs (GFDL-1.3): the English packs, as babble: several lines laid over each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdasr.audio import load_audio
from kdasr.errors import AudioError, KdasrError

SFX_PACKAGE, BABBLE_PACKAGE = "sonic-pi-samples", "hedgewars-data"
_SFX_DIR = "usr/share/sonic-pi/samples"
_VOICES_DIR = "usr/share/games/hedgewars/Data/Sounds/voices"
BABBLE_LICENCE = "GFDL-1.3 (hedgewars-data, Sounds: (c) 2004-2006 Andrey Korotaev)"


@dataclass
class NoiseBank:
    sfx: list[np.ndarray]  # 16 kHz mono clips
    voices: list[np.ndarray]
    sources: dict  # for build info: files, licences

    def sample(self, kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """n samples of 'sfx' (clips end to end from a random start) or 'babble' (3-6 voices overlaid)."""
        if kind == "sfx":
            return _tile(self.sfx, n, rng)
        layers = [_tile(self.voices, n, rng) for _ in range(int(rng.integers(3, 7)))]
        return np.sum(layers, axis=0).astype(np.float32)


def _tile(clips: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    out, filled = np.zeros(n, np.float32), 0
    while filled < n:
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(clip.size)) if filled == 0 else 0  # not always the clip's onset
        part = clip[start:start + n - filled]
        out[filled:filled + part.size] = part
        filled += part.size
    return out


def cc0_files(copyright_file: Path) -> list[str]:
    """Base names of the files a DEP-5 copyright file licenses CC0."""
    names = []
    for para in re.split(r"\n\s*\n", copyright_file.read_text(encoding="utf-8", errors="replace")):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", para, re.M)
        licence = re.search(r"^License:\s*(\S+)", para, re.M)
        if files and licence and licence.group(1).upper() == "CC0":
            names += [Path(f).name for f in files.group(1).split()]
    return names


def _load_all(paths: list[Path], min_seconds: float) -> list[np.ndarray]:
    clips = []
    for p in paths:
        try:
            x = load_audio(p)
        except AudioError:
            continue  # an unreadable sample is left out of the bank, not a failed build
        if x.size >= min_seconds * 16000 and np.abs(x).max() > 1e-4:
            clips.append(x / max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), 1e-6))
    return clips


def load_noise_bank(packages: Path) -> NoiseBank:
    """The bank from packages/<name>/...; a missing package is a one-line error naming it."""
    sfx_root, voices_root = packages / SFX_PACKAGE, packages / BABBLE_PACKAGE
    for root, name in ((sfx_root, SFX_PACKAGE), (voices_root, BABBLE_PACKAGE)):
        if not (root / "usr").is_dir():
            raise KdasrError(f"{root}: the Debian package {name} is not unpacked there (run `make setup-noise`)")
    cc0 = set(cc0_files(sfx_root / f"usr/share/doc/{SFX_PACKAGE}/copyright"))
    sfx_paths = sorted(p for p in (sfx_root / _SFX_DIR).glob("*.flac") if p.name in cc0)
    packs = sorted(d for d in (voices_root / _VOICES_DIR).iterdir() if d.is_dir() and "_" not in d.name)
    voice_paths = sorted(p for d in packs for p in d.glob("*.ogg"))
    bank = NoiseBank(_load_all(sfx_paths, 0.2), _load_all(voice_paths, 0.2), {
        "sfx": {"package": SFX_PACKAGE, "licence": "CC0 (per-file, from the package's copyright file)",
                "files": len(sfx_paths)},
        "babble": {"package": BABBLE_PACKAGE, "licence": BABBLE_LICENCE, "voice_packs": [d.name for d in packs],
                   "files": len(voice_paths)},
    })
    if not bank.sfx or not bank.voices:
        raise KdasrError(f"{packages}: no usable recorded noise or voices found (sfx {len(bank.sfx)}, "
                         f"voices {len(bank.voices)})")
    return bank
