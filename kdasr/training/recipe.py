"""`kdasr train` as a library call: manifests + tokenizer -> features -> examples -> trainer."""

from __future__ import annotations

import time
from pathlib import Path

from ..data.manifest import read_manifest
from ..models.frontend import LogMelFrontend
from ..text import Tokenizer
from .data import make_examples
from .features import compute_features
from .presets import load_preset
from .trainer import train


def run_training(
    train_manifest: Path,
    dev_manifest: Path,
    tokenizer_path: Path,
    out_dir: Path,
    preset: str = "demo",
    feature_cache: Path | None = None,
    resume: bool = True,
    **overrides,
) -> Path:
    tok = Tokenizer(tokenizer_path)
    model_cfg, train_cfg = load_preset(preset, tok.vocab_size, **overrides)
    frontend = LogMelFrontend(model_cfg.sample_rate, model_cfg.n_fft, model_cfg.hop_length, model_cfg.n_mels)
    cache = feature_cache or out_dir / "feats"
    sets = {}
    for name, manifest in (("train", train_manifest), ("dev", dev_manifest)):
        utts = read_manifest(manifest)
        feats = compute_features(utts, cache / name, frontend, model_cfg.sample_rate, desc=f"{name} features")
        sets[name] = (utts, make_examples(utts, feats, tok))
    hours = sum(u.duration for u in sets["train"][0]) / 3600
    summary = {
        "train_manifest": str(train_manifest),
        "train_hours": round(hours, 2),
        "train_utterances": len(sets["train"][1].ids),
        "preset": preset,
        "kd": "none",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return train(model_cfg, train_cfg, sets["train"][1], sets["dev"][1], tok, out_dir, resume=resume, summary=summary)
