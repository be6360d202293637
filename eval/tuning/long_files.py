"""Build the 2-hour test files of eval/reports/robustness.md:

    .venv/bin/python eval/tuning/long_files.py /tmp/long

silence2h.flac: white noise at amplitude 0.0005 (about -66 dBFS RMS); speech2h.flac: the
eval/samples clips (sorted by name), each followed by 0.6 s of silence, repeated to 2 hours.
Both are written a minute at a time (PCM-16 FLAC, 16 kHz)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from kdasr.audio import load_audio

SR, SECONDS = 16000, 2 * 3600
ROOT = Path(__file__).resolve().parents[2]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    total, rng = SECONDS * SR, np.random.default_rng(0)
    with sf.SoundFile(out / "silence2h.flac", "w", SR, 1, subtype="PCM_16") as f:
        for k in range(0, total, 60 * SR):
            f.write((rng.standard_normal(min(60 * SR, total - k)) * 0.0005).astype(np.float32))
    gap = np.zeros(int(0.6 * SR), np.float32)
    cycle = np.concatenate([x for p in sorted((ROOT / "eval/samples").glob("*.flac")) for x in (load_audio(p), gap)])
    with sf.SoundFile(out / "speech2h.flac", "w", SR, 1, subtype="PCM_16") as f:
        written = 0
        while written < total:
            part = cycle[: total - written]
            f.write(part)
            written += len(part)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/long"))
