"""Soft labels from the two-sided count model (issue 28 item 2, a knowledge control): for each
transcript token y_i, the distribution p(u | y_{i-1}, y_{i+1}) of kdasr.teachers.ngram.CountModels
(the model `kdasr teacher quality` scores as "two-sided count (l, r)", same discount), trained on the
teacher text; <bos> and <eos> stand beside the first and last token. A student distilled from these
gets soft targets of the same shape as BERT's (top K, temperature T) but with no knowledge beyond one
unit on each side: if BERT-KD's gain is BERT's knowledge, count-KD should not match it.

Written like the BERT labels (kdasr.teachers.storage: shards, meta.json, resumable, atomic): specials
excluded, the top K units (most likely first; ties by lower id), softmax(log p / T) over those K, so
`kdasr teacher soft-derive` works on them too. meta.json: teacher "count", mode "two-sided-count",
the teacher text's path, sha1 and size. Torch-free: numpy, each (left, right) pair computed once."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.manifest import Utterance, read_manifest
from ..errors import KdasrError
from ..io_utils import atomic_write_text
from ..text import BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID, Tokenizer
from .common import read_documents
from .kd_mode import KdMode
from .ngram import CountModels
from .storage import SoftLabelMeta, prepare_dir, tokenizer_sha1, write_label_shards

COUNT_PREFIX = "count:"  # `kdasr teacher soft-labels --teacher count:TEXT`
SPECIAL_IDS = (PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID)  # never a label (as kdasr.teachers.soft_labels)
Labels = tuple[np.ndarray, np.ndarray]  # ids int64 [n, K], probs float32 [n, K]


@dataclass(frozen=True)
class CountLabelConfig:
    top_k: int = 8
    temperature: float = 3.0
    discount: float = 0.75  # absolute discounting d, as `kdasr teacher quality`'s count models
    shard_size: int = 500  # utterances per shard
    batch_pairs: int = 2048  # (left, right) pairs per vectorised step ([batch, V] float64 in memory)


def count_teacher_text(teacher: str | Path) -> Path | None:
    """The teacher text of a `count:TEXT` teacher spec; None for any other teacher."""
    spec = str(teacher)
    return Path(spec[len(COUNT_PREFIX):]) if spec.startswith(COUNT_PREFIX) else None


def topk_from_probs(p: np.ndarray, k: int, temperature: float) -> Labels:
    """p [n, V] -> the top-K ids (specials excluded; ties by lower id) and softmax(log p / T) over them."""
    p = p.copy()
    p[:, list(SPECIAL_IDS)] = 0.0
    ids = np.argsort(-p, axis=1, kind="stable")[:, :k]
    with np.errstate(divide="ignore"):
        z = np.log(np.take_along_axis(p, ids, axis=1)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return ids.astype(np.int64), (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def pair_labels(model: CountModels, pairs: list[tuple[int, int]], cfg: CountLabelConfig) -> list[Labels]:
    """Top-K labels of p(u | l, r) for each (l, r) pair, computed batch_pairs at a time."""
    out: list[Labels] = []
    for i in range(0, len(pairs), cfg.batch_pairs):
        left, right = np.array(pairs[i : i + cfg.batch_pairs], dtype=np.int64).T
        ids, probs = topk_from_probs(model.two_sided_batch(left, right), cfg.top_k, cfg.temperature)
        out += list(zip(ids, probs))
    return out


def token_pairs(tokens: tuple[int, ...]) -> list[tuple[int, int]]:
    """(left, right) neighbours of each token, <bos> / <eos> at the edges."""
    padded = (BOS_ID, *tokens, EOS_ID)
    return [(padded[i - 1], padded[i + 1]) for i in range(1, len(padded) - 1)]


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def count_model(text: Path, tok: Tokenizer, discount: float) -> tuple[CountModels, int]:
    """The count models of the teacher text over `tok`'s units, and how many sentences it had."""
    sents = [t for doc in read_documents(text) for s in doc if (t := tok.encode(s))]
    if not sents:
        raise KdasrError(f"{text}: no sentence to count (empty teacher text?)")
    return CountModels(sents, tok.vocab_size, discount), len(sents)


def generate_count_labels(
    utts: list[Utterance],
    tok: Tokenizer,
    model: CountModels,
    cfg: CountLabelConfig,
    out_dir: Path,
    meta: SoftLabelMeta,
    progress: bool = True,
    stop_after_shards: int | None = None,
) -> dict:
    """Write count-model soft-label shards for `utts` into out_dir; shards already there are kept (resume)."""
    prepare_dir(out_dir, meta)
    own = {u.id: tuple(tok.encode(u.text)) for u in utts}
    utts = [u for u in utts if own[u.id]]
    shards = [utts[i : i + cfg.shard_size] for i in range(0, len(utts), cfg.shard_size)]
    cache: dict[tuple[int, int], Labels] = {}
    stats = {"utterances": len(utts), "tokens": sum(len(own[u.id]) for u in utts), "written_tokens": 0,
             "computed_pairs": 0, "seconds": 0.0, "shards_written": 0}
    def label(shard: list[Utterance]) -> tuple[dict, int]:
        plan = {u.id: token_pairs(own[u.id]) for u in shard}
        todo = list(dict.fromkeys(p for ps in plan.values() for p in ps if p not in cache))
        cache.update(zip(todo, pair_labels(model, todo, cfg)))
        rows = {uid: (np.stack([cache[p][0] for p in ps]), np.stack([cache[p][1] for p in ps]))
                for uid, ps in plan.items()}
        stats["computed_pairs"] += len(todo)
        stats["written_tokens"] += sum(len(ps) for ps in plan.values())
        return rows, sum(len(ps) for ps in plan.values())

    write_label_shards(out_dir, shards, label, tok.vocab_size, stats, title="count soft labels", progress=progress,
                       stop_after_shards=stop_after_shards)
    return stats


def run_count_soft_labels(manifests: list[Path], tokenizer: Path, text: Path, out: Path, cfg: CountLabelConfig,
                          progress: bool = True) -> dict:
    """`kdasr teacher soft-labels --teacher count:TEXT`: labels for every utterance of `manifests` in one
    folder; summary.json (the stats, the manifests, the count model's facts) written last."""
    text = Path(text)
    if not text.is_file():
        raise KdasrError(f"{text}: no such teacher text (--teacher count:TEXT)")
    if not cfg.temperature > 0:
        raise KdasrError(f"--temperature must be above 0, got {cfg.temperature}")
    tok = Tokenizer(tokenizer)
    units = tok.vocab_size - (MASK_ID + 1)
    if not 1 <= cfg.top_k <= units:
        raise KdasrError(f"--top-k {cfg.top_k}: the count model ranks {units} units (1 to {units})")
    utts = [u for m in manifests for u in read_manifest(m)]
    meta = SoftLabelMeta(KdMode.COUNT.teacher, KdMode.COUNT.label_mode, cfg.top_k, float(cfg.temperature), 0,
                         tok.vocab_size, tokenizer_sha1(tok.model_bytes), str(text),
                         teacher_sha1=file_sha1(text), teacher_bytes=text.stat().st_size)
    prepare_dir(out, meta)  # refuse a folder of other labels before counting the text
    t0 = time.time()
    model, sentences = count_model(text, tok, cfg.discount)
    counted = time.time() - t0
    stats = generate_count_labels(utts, tok, model, cfg, out, meta, progress=progress)
    stats.update(teacher_sentences=sentences, discount=cfg.discount, count_seconds=round(counted, 3),
                 tokens_per_second=round(stats["written_tokens"] / max(stats["seconds"], 1e-9), 1))
    atomic_write_text(out / "summary.json",
                      json.dumps({**stats, "manifests": [str(m) for m in manifests]}, indent=2) + "\n")
    return stats
