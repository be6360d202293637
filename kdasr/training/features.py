"""Precompute log-mel features once per manifest (the frontend is fixed, so re-running it every
epoch would waste most of a 2-core budget). Shards are written atomically and skipped when
present, so a killed run resumes where it stopped."""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from ..audio import load_audio
from ..data.manifest import Utterance
from ..errors import AudioError, KdasrError
from ..io_utils import atomic_open

SHARD_SIZE = 1000
FEATURE_SHARD_NAME = re.compile(r"feats-[0-9a-f]{12}\.npz")


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


def _read_shard(path: Path) -> dict[str, np.ndarray]:
    """A cached shard; one line naming it when it is not what compute_features writes (numpy refuses
    object arrays without allow_pickle, and unpickling a crafted file could run code: never allowed)."""
    try:
        with np.load(path) as z:
            out = {str(uid): z[f"a{i}"] for i, uid in enumerate(z["ids"])}
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as e:
        why = "it holds object arrays, which kdasr never unpickles" if "allow_pickle" in str(e) else (
            str(e).splitlines() or [type(e).__name__])[0][:120]
        raise KdasrError(f"{path}: not a usable feature cache shard ({why}); delete it to have it recomputed") from None
    if any(a.dtype.kind not in "fiu" or a.ndim != 2 for a in out.values()):
        raise KdasrError(f"{path}: not a usable feature cache shard (arrays are not 2-D numbers); delete it")
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
                try:
                    with atomic_open(path, "wb") as f:
                        np.savez(f, ids=np.array(list(arrays), dtype=str),
                                 **{f"a{i}": a for i, a in enumerate(arrays.values())})
                except OSError as e:  # a full disk: one line; atomic_open left no partial shard
                    raise KdasrError(f"cannot write the feature cache {path}: {e.strerror or e}") from None
            result.update(_read_shard(path))
            progress.advance(task, len(shard))
    ids = [u.id for u in utts if u.id in result]
    return FeatureSet(ids, [result[i] for i in ids])
