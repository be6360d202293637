"""One row's facts for issue 27's encoder x training grid (eval/pretrained/run.sh gridscore), read from
a training checkpoint and its encoder cache, written as JSON beside the row's eval records:

  encoder, whisper layers that trained, trainable / total parameters (the checkpoint's model config
  rebuilt; nothing loaded but the checkpoint), optimiser steps and training minutes, and what the
  encoder cache cost to build: the cache folder's build.json (kdasr's encoder cache writes it), else
  the span of its shard files' modification times scaled by n / (n - 1) shards (for a cache built
  before build.json existed; stated in the record), else none (a run without a cache).

  python eval/pretrained/grid_info.py CHECKPOINT --cache exp/cache/base-frozen \
    --out exp/p27/units/grid-base-frozen-info.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdasr.io_utils import atomic_write_text


def cache_cost(cache: Path | None) -> dict | None:
    """The train split's cache build (the one the trainer computes first; dev is a few percent more)."""
    if cache is None:
        return None
    folders = sorted((cache / "train").glob("enc-*"))
    if not folders:
        return None
    newest = max(folders, key=lambda f: f.stat().st_mtime)  # the cache this run's weights hash to
    build = newest / "build.json"
    if build.is_file():
        doc = json.loads(build.read_text())
        return {"seconds": doc["seconds"], "utterances": doc["utterances"], "source": str(build)}
    times = sorted(p.stat().st_mtime for p in newest.glob("shard-*.npz"))
    if len(times) < 2:
        return None
    n = len(times)
    return {"seconds": round((times[-1] - times[0]) * n / (n - 1), 1), "utterances": None,
            "source": f"{newest}: shard modification times, span x {n}/{n - 1}"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--cache", type=Path, help="the run's --feature-cache (an encoder cache, or log-mel features)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    from kdasr.models.student import build_model
    from kdasr.training.checkpoint import TrainingCheckpoint

    ck = TrainingCheckpoint.load(args.checkpoint)
    model = build_model(ck.model_config)
    enc = model.encoder
    cfg = ck.model_config
    encoder_cache = bool(ck.train_config.get("encoder_cache"))
    doc = {
        "checkpoint": str(args.checkpoint),
        "encoder": cfg.encoder_type,
        "whisper_layers": len(enc.layers),
        "whisper_trainable_layers": enc.trainable_layers,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": ck.step,
        "train_minutes": round(ck.elapsed / 60, 1),
        "pretrained_lr_scale": ck.train_config.get("pretrained_lr_scale", 1.0),
        "encoder_cache": encoder_cache,
        "cache_build": cache_cost(args.cache) if encoder_cache else None,
    }
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
