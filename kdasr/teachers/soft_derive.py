"""Soft labels at another temperature and a smaller K without running the teacher again
(`kdasr teacher soft-derive`): the stored top-K are softmax(top-K logits / T_src), so
p_T ∝ p_src^(T_src / T) over the first K entries (kept sorted, most likely first) gives exactly what
the teacher would have written at (T, K), up to the source's float16 storage. One teacher pass at the
largest K of a T × K sweep (issue 28 item 3) then serves every point of it.

Precision: a source probability below float16's range (about 6e-8) is stored as 0 and stays 0; at T
above T_src such a tail entry would have had a small weight (6e-8^(1/3) ≈ 4e-3 of the top entry's
at T = 3 from T_src = 1). `tests/test_soft_derive.py` bounds the difference against a direct run."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ..errors import KdasrError
from ..io_utils import atomic_write_text
from .storage import one_writer, prepare_dir, read_meta, write_shard


def derive_rows(probs: np.ndarray, ids: np.ndarray, t_src: float, t: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probs) at temperature t over the first k entries of a store made at t_src."""
    p = probs[:, :k].astype(np.float64)
    with np.errstate(divide="ignore"):
        logp = np.where(p > 0, np.log(np.maximum(p, 1e-300)), -np.inf) * (t_src / t)
    logp -= logp.max(axis=1, keepdims=True)
    q = np.exp(logp)
    return ids[:, :k], (q / q.sum(axis=1, keepdims=True)).astype(np.float32)


def derive_soft_labels(src: Path, out: Path, temperature: float, top_k: int) -> dict:
    """Write OUT at (temperature, top_k) from the soft labels in SRC; shards already in OUT are kept
    (resume); summary.json last. KdasrError naming the folder for a request SRC cannot serve."""
    src, out = Path(src), Path(out)
    meta = read_meta(src)
    if not temperature > 0:
        raise KdasrError(f"--temperature must be above 0, got {temperature}")
    if not 1 <= top_k <= meta.top_k:
        raise KdasrError(f"{src}: holds the top {meta.top_k} per token; cannot derive K = {top_k} (1 to {meta.top_k})")
    if src.resolve() == out.resolve():
        raise KdasrError(f"{out}: the derived labels need their own folder (it is the source)")
    shards = sorted(src.glob("shard-*.npz"))
    if not shards or not (src / "summary.json").is_file():
        raise KdasrError(f"{src}: soft labels not finished (no summary.json): finish `kdasr teacher soft-labels` first")
    new = dataclasses.replace(meta, top_k=top_k, temperature=float(temperature))
    with one_writer(out):
        return _derive(src, out, meta, new, shards)


def _derive(src: Path, out: Path, meta, new, shards: list[Path]) -> dict:
    temperature, top_k = new.temperature, new.top_k
    prepare_dir(out, new)
    t0, written, tokens = time.time(), 0, 0
    for shard in shards:
        with np.load(shard) as z:
            offsets, uids = z["offsets"], [str(u) for u in z["utt_ids"]]
            tokens += int(offsets[-1])
            if (out / shard.name).exists():
                continue
            ids, probs = derive_rows(z["probs"].astype(np.float32), z["ids"].astype(np.int64), meta.temperature,
                                     temperature, top_k)
        rows = {u: (ids[offsets[i]:offsets[i + 1]], probs[offsets[i]:offsets[i + 1]]) for i, u in enumerate(uids)}
        write_shard(out / shard.name, rows, meta.vocab_size)
        written += 1
    stats = {"derived_from": str(src), "source_temperature": meta.temperature, "source_top_k": meta.top_k,
             "temperature": float(temperature), "top_k": top_k, "shards": len(shards), "shards_written": written,
             "tokens": tokens, "seconds": round(time.time() - t0, 3)}
    atomic_write_text(out / "summary.json", json.dumps(stats, indent=2) + "\n")
    return stats
