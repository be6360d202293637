"""Precompute log-mel features once per manifest (the frontend is fixed, so re-running it every
epoch would waste most of a 2-core budget). Shards are written atomically and skipped when
present, so a killed run resumes where it stopped."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from ..audio import load_audio
from ..data.manifest import Utterance
from ..errors import AudioError
from ..io_utils import atomic_open

SHARD_SIZE = 1000


@dataclass
class FeatureSet:
    ids: list[str]
    feats: list[np.ndarray]  # float16 [T, n_mels] per utterance


def _shard_key(utts: list[Utterance], frontend_desc: str) -> str:
    h = hashlib.sha1(frontend_desc.encode())
    for u in utts:
        h.update(f"{u.id}|{u.audio}|{u.start}|{u.duration}\n".encode())
    return h.hexdigest()[:12]


@torch.no_grad()
def _compute(frontend: torch.nn.Module, utts: list[Utterance], sample_rate: int) -> dict[str, np.ndarray]:
    out = {}
    for u in utts:
        try:
            # the manifest's slice, also for a segment at start 0 (else it reads the whole recording)
            wave = load_audio(u.audio, sample_rate, start=u.start, duration=u.duration)
        except AudioError as e:  # skip, but say which file and why
            print(f"warning: skipping {u.id}: {e}")
            continue
        w = torch.from_numpy(wave)[None]
        feats, _ = frontend(w, torch.tensor([w.shape[1]]))
        out[u.id] = feats[0].numpy().astype(np.float16)
    return out


def compute_features(
    utts: list[Utterance], cache_dir: Path, frontend: torch.nn.Module, sample_rate: int, desc: str = "features"
) -> FeatureSet:
    cache_dir.mkdir(parents=True, exist_ok=True)
    frontend_desc = f"{frontend.n_fft}/{frontend.hop_length}/{frontend.mel.shape[1]}"
    if tag := getattr(frontend, "cache_tag", ""):  # another kind of features (whisper's log-mel)
        frontend_desc += f"/{tag}"
    shards = [utts[i : i + SHARD_SIZE] for i in range(0, len(utts), SHARD_SIZE)]
    result: dict[str, np.ndarray] = {}
    with Progress() as progress:
        task = progress.add_task(desc, total=len(utts))
        for shard in shards:
            path = cache_dir / f"feats-{_shard_key(shard, frontend_desc)}.npz"
            if not path.exists():
                arrays = _compute(frontend, shard, sample_rate)
                with atomic_open(path, "wb") as f:
                    np.savez(
                        f, ids=np.array(list(arrays), dtype=str), **{f"a{i}": a for i, a in enumerate(arrays.values())}
                    )
            with np.load(path) as z:
                for i, uid in enumerate(z["ids"]):
                    result[str(uid)] = z[f"a{i}"]
            progress.advance(task, len(shard))
    ids = [u.id for u in utts if u.id in result]
    return FeatureSet(ids, [result[i] for i in ids])
