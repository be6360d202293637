"""`kdasr data mix`: one training corpus of real and synthetic speech. Torch-free.

- Synthetic train utterances (corpus v2) are kept; a stated share of them is band-limited through
  11.025 kHz, the game clips' sampling rate, so that narrow bandwidth is not the model's cue for "real".
- Real train clips are kept, and each gets `real_copies` augmented copies: recorded sound effects or
  babble of unlabelled voices (`real_noise`) at a drawn SNR.
- Every choice is drawn from a generator seeded by (seed, utterance id): the same corpus on every run,
  and a killed build resumes (audio already written is kept).
Dev and test manifests of both sources are written beside train, pointing at the original audio, and
teacher.txt for the teachers (`mix_text`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kdasr.audio import load_audio
from kdasr.data.manifest import Utterance, read_manifest, write_manifest
from kdasr.data.mix_text import write_teacher_text
from kdasr.data.signal import mix_at_snr
from kdasr.errors import KdasrError
from kdasr.io_utils import atomic_open, atomic_write_text

GAME_RATE = 11025
SFX_SNR_DB = (5.0, 20.0)
BABBLE_SNR_DB = (5.0, 15.0)
SYNTHETIC_SETS = ("dev", "test", "test_heldout", "test_neural_heldout", "test_noisy")
REAL_SETS = ("dev_real", "dev_real_seen", "test_real")


def utt_rng(seed: int, utt_id: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{utt_id}".encode()).digest()[:8], "big"))


def band_limit(x: np.ndarray) -> np.ndarray:
    """16 kHz -> 11.025 kHz -> 16 kHz: nothing above 5.5 kHz, as in the game clips."""
    y = soxr.resample(soxr.resample(x, 16000, GAME_RATE), GAME_RATE, 16000)
    return y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))


def _write(path: Path, x: np.ndarray) -> None:
    with atomic_open(path, "wb") as f:
        sf.write(f, np.clip(x, -1, 1), 16000, format="FLAC", subtype="PCM_16")


def build_mix(out: Path, synthetic: Path, real: list[Path], packages: Path, *, seed: int = 0,
              band_limit_share: float = 0.3, real_copies: int = 1, progress=None) -> dict:
    """Write out/train.jsonl (+ the dev/test manifests) and out/build_info.json; returns the build info."""
    from kdasr.data.real_noise import load_noise_bank

    if not 0.0 <= band_limit_share <= 1.0:
        raise KdasrError(f"band-limit share must be within 0..1, got {band_limit_share}")
    started = time.time()
    progress = progress or (lambda items, _label: items)
    for folder in (synthetic, *real):
        if not (folder / "train.jsonl").is_file():
            raise KdasrError(f"{folder / 'train.jsonl'}: no such manifest (build that corpus first)")
    synth_train = read_manifest(synthetic / "train.jsonl")
    real_train = [u for folder in real for u in read_manifest(folder / "train.jsonl")]
    bank = load_noise_bank(packages) if real_copies else None
    train: list[Utterance] = []
    limited = 0
    for u in progress(synth_train, "band-limit synthetic"):
        if utt_rng(seed, u.id).random() < band_limit_share:
            path = out / "audio/bandlimited" / f"{u.id}.flac"
            if not path.exists():
                _write(path, band_limit(load_audio(u.audio, start=u.start, duration=u.duration)))
            u = replace(u, id=f"{u.id}-bl", audio=str(path), start=0.0,
                        extra={**u.extra, "bandlimit_hz": GAME_RATE})
            limited += 1
        train.append(u)
    kinds = {"sfx": 0, "babble": 0}
    for u in progress(real_train, "augment real"):
        train.append(u)
        for k in range(real_copies):
            rng = utt_rng(seed, f"{u.id}#{k}")
            kind = "sfx" if rng.random() < 0.5 else "babble"
            snr = round(float(rng.uniform(*(SFX_SNR_DB if kind == "sfx" else BABBLE_SNR_DB))), 1)
            path = out / "audio/real-aug" / f"{u.id}-{k}.flac"
            if not path.exists():
                x = load_audio(u.audio, start=u.start, duration=u.duration)
                _write(path, mix_at_snr(x, bank.sample(kind, x.size, rng), snr))
            kinds[kind] += 1
            train.append(replace(u, id=f"{u.id}-aug{k}", audio=str(path), start=0.0,
                                 extra={**u.extra, "noise": f"{kind}:{snr}dB"}))
    write_manifest(out / "train.jsonl", train)
    for folders, sets in (([synthetic], SYNTHETIC_SETS), (real, REAL_SETS)):
        for name in sets:  # a set several real corpora have is their union (ids carry the corpus name)
            parts = [read_manifest(f / f"{name}.jsonl") for f in folders if (f / f"{name}.jsonl").is_file()]
            if any(parts):
                write_manifest(out / f"{name}.jsonl", [u for part in parts for u in part])
    teacher_text = write_teacher_text(out, synthetic, real,
                                      [out / f"{n}.jsonl" for n in (*SYNTHETIC_SETS, *REAL_SETS)])
    hours = {"synthetic": sum(u.duration for u in synth_train) / 3600,
             "real": sum(u.duration for u in real_train) / 3600 * (1 + real_copies)}
    info = {
        "corpus": "mix", "corpus_version": "mix (synthetic + real)", "seed": seed,
        "synthetic": str(synthetic), "real": [str(r) for r in real],
        "train_hours": {k: round(v, 3) for k, v in hours.items()},
        "real_share_of_train_hours": round(hours["real"] / sum(hours.values()), 3),
        "band_limit": {"share": band_limit_share, "rate_hz": GAME_RATE, "utterances": limited},
        "real_copies": real_copies, "real_augmentation": {**kinds, "sfx_snr_db": SFX_SNR_DB,
                                                          "babble_snr_db": BABBLE_SNR_DB},
        "noise_sources": bank.sources if bank else None,
        "teacher_text": teacher_text,
        "licences": _licences(synthetic, real, bank), "wall_seconds": round(time.time() - started, 1),
        # the keys model cards read (kdasr.reports.model_card_facts.load_corpus): splits, sources and licences
        "speech": _speech(out), "sources": _sources(synthetic, real, bank),
    }
    atomic_write_text(out / "build_info.json", json.dumps(info, indent=2) + "\n")
    return info


def _read_info(folder: Path) -> dict:
    try:
        return json.loads((folder / "build_info.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _speech(out: Path) -> dict:
    stats = {}
    for path in sorted(out.glob("*.jsonl")):
        utts = read_manifest(path)
        stats[path.stem] = {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 3),
                            "speakers": len({u.speaker for u in utts})}
    return stats


def _sources(synthetic: Path, real: list[Path], bank) -> dict:
    """The synthetic corpus's sources (voices, texts, conditions) plus the real speech and the noise."""
    sources = {k: dict(v) for k, v in _read_info(synthetic).get("sources", {}).items()}
    for folder in real:
        if built := _read_info(folder):
            sources.setdefault("real speech", {})[built.get("corpus", folder.name)] = {
                "from": f"Debian {built.get('package')} {built.get('package_version')} (voice acting)",
                "licence": built.get("licence", "")}
    if bank:
        sources["recorded noise"] = {s["package"]: {"from": f"Debian {s['package']}", "licence": s["licence"]}
                                     for s in bank.sources.values()}
    return sources


def _licences(synthetic: Path, real: list[Path], bank) -> list[str]:
    """What a model trained on the mix must carry: each source corpus's licences and the noise's."""
    out = []
    for folder in (synthetic, *real):
        try:
            built = json.loads((folder / "build_info.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        lic = built.get("licence") or built.get("licences")
        out += lic if isinstance(lic, list) else [f"{folder.name}: {lic}"] if lic else []
    if bank:
        out += [f"{s['package']}: {s['licence']}" for s in bank.sources.values()]
    return out
