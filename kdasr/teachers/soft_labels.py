"""Soft labels from the teachers (DESIGN.md §4): per transcript token, the teacher's distribution
with special tokens dropped, top K kept, softmax at temperature T over those K.

BERT, the fast way (`fast_window_labels`): every masked copy of a window is one row; rows of
equal length are batched together (no padding, so no attention mask), the encoder runs once
per row, BERT's last layer and the MLM head run only at each row's masked position. Identical windows (one
sentence spoken by several voices) are computed once. `straightforward_labels` is the way the
paper's code does it — one row per masked copy in corpus order, batches of 50 padded to the
longest, the full model with its head over every position and the whole vocabulary — kept as
the reference that tests and `kdasr teacher bench` compare against.

The LM teacher's labels come from one causal forward per utterance (`lm_labels`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.manifest import Utterance
from ..text import BOS_ID, EOS_ID, MASK_ID, PAD_ID, UNK_ID, Tokenizer
from .context import DocumentIndex, Window, utterance_windows
from .kd_mode import KdMode, bert_label_mode
from .mlm import MaskedRow, masked_rows, run_masked_batches
from .storage import SoftLabelMeta, prepare_dir, tokenizer_sha1, write_label_shards
from .train_loop import amp_context, device_of

SPECIAL_IDS = (PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID)
Labels = tuple[np.ndarray, np.ndarray]  # ids int64 [n, K], probs float32 [n, K]


@dataclass(frozen=True)
class SoftLabelConfig:
    mode: str = "utterance"  # BERT: "utterance" or "context" (kd_mode.BERT_LABEL_MODES); the LM is always "causal"
    top_k: int = 8
    temperature: float = 3.0
    window: int = 256  # context window in tokens
    batch_tokens: int = 8192  # rows × length per forward
    shard_size: int = 500  # utterances per shard
    amp: str = "none"  # "bf16": the teacher's body under bf16 autocast; its output head stays fp32


def topk_soft(logits: torch.Tensor, k: int, temperature: float) -> Labels:
    """logits [n, V] -> top-K ids and softmax(logit / T) over those K, specials excluded."""
    logits = logits.float().clone()
    logits[:, list(SPECIAL_IDS)] = float("-inf")
    vals, ids = logits.topk(k, dim=-1)
    probs = torch.softmax(vals / temperature, dim=-1)
    return ids.numpy().astype(np.int64), probs.numpy().astype(np.float32)


def _assemble(windows: list[Window], results: Iterator[tuple[list[MaskedRow], Labels]], k: int) -> list[Labels]:
    out = [(np.zeros((w.length, k), np.int64), np.zeros((w.length, k), np.float32)) for w in windows]
    for chunk, (ids, probs) in results:
        for j, r in enumerate(chunk):
            i = r.position - windows[r.window].start
            out[r.window][0][i], out[r.window][1][i] = ids[j], probs[j]
    return out


def fast_window_labels(model, windows: list[Window], cfg: SoftLabelConfig, mask_id: int = MASK_ID) -> list[Labels]:
    """Soft labels for the masked positions of each window, the fast way."""
    rows = masked_rows([(w.tokens, w.masked) for w in windows])
    results = (
        (chunk, topk_soft(logits, cfg.top_k, cfg.temperature))
        for chunk, logits in run_masked_batches(model, rows, cfg.batch_tokens, mask_id, cfg.amp)
    )
    return _assemble(windows, results, cfg.top_k)


@torch.no_grad()
def straightforward_labels(
    model, windows: list[Window], cfg: SoftLabelConfig, mask_id: int = MASK_ID, batch_rows: int = 50
) -> list[Labels]:
    """The paper code's way: one padded row per masked copy, batches of 50, full model output."""
    rows = masked_rows([(w.tokens, w.masked) for w in windows])

    def results():
        for i in range(0, len(rows), batch_rows):
            chunk = rows[i : i + batch_rows]
            width = max(len(r.tokens) for r in chunk)
            ids = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
            att = torch.zeros_like(ids)
            for j, r in enumerate(chunk):
                ids[j, : len(r.tokens)] = torch.tensor(r.tokens)
                ids[j, r.position] = mask_id
                att[j, : len(r.tokens)] = 1
            dev = device_of(model)
            logits = model(input_ids=ids.to(dev), attention_mask=att.to(dev)).logits  # [r, L, V]: every position
            picked = torch.stack([logits[j, r.position] for j, r in enumerate(chunk)]).cpu()
            yield chunk, topk_soft(picked, cfg.top_k, cfg.temperature)

    return _assemble(windows, results(), cfg.top_k)


@torch.no_grad()
def lm_labels(lm, token_lists: list[tuple[int, ...]], cfg: SoftLabelConfig) -> list[Labels]:
    """One causal forward per utterance: the LM's next-unit distribution before each token."""
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
    out: list[Labels | None] = [None] * len(token_lists)
    i = 0
    while i < len(order):
        width = len(token_lists[order[i]])
        per = max(1, cfg.batch_tokens // max(width, 1))
        chunk = order[i : i + per]
        width = max(len(token_lists[j]) for j in chunk)
        x = torch.full((len(chunk), width), PAD_ID, dtype=torch.long)
        for b, j in enumerate(chunk):
            t = token_lists[j]
            x[b, : len(t)] = torch.tensor([BOS_ID, *t[:-1]])
        with amp_context(cfg.amp, device_of(lm)):
            logits = lm(x.to(device_of(lm))).cpu()
        for b, j in enumerate(chunk):
            n = len(token_lists[j])
            out[j] = topk_soft(logits[b, :n], cfg.top_k, cfg.temperature)
        i += len(chunk)
    return out  # type: ignore[return-value]


def generate_soft_labels(
    utts: list[Utterance],
    tok: Tokenizer,
    teacher,
    kind: str,
    cfg: SoftLabelConfig,
    out_dir: Path,
    teacher_path: str = "",
    progress: bool = True,
    stop_after_shards: int | None = None,
) -> dict:
    """Write soft-label shards for `utts` into out_dir; shards already there are kept (resume).
    kind: "bert" (teacher: BertTeacher) or "lm" (teacher: TransformerLM)."""
    kd = bert_label_mode(cfg.mode) if kind == "bert" else KdMode.LM  # the student's --kd these labels serve
    window = min(cfg.window, teacher.window) if kind == "bert" else 0
    mode = kd.label_mode
    meta = SoftLabelMeta(
        kind,
        mode,
        cfg.top_k,
        cfg.temperature,
        window if kd.context else 0,
        tok.vocab_size,
        tokenizer_sha1(tok.model_bytes),
        teacher_path,
        amp=cfg.amp,
    )
    prepare_dir(out_dir, meta)
    own = {u.id: tuple(tok.encode(u.text)) for u in utts}
    utts = [u for u in utts if own[u.id]]
    docs = DocumentIndex(utts, tok.encode) if kd.context else None
    shards = [utts[i : i + cfg.shard_size] for i in range(0, len(utts), cfg.shard_size)]
    cache: dict = {}
    stats = {
        "utterances": len(utts),
        "tokens": sum(len(own[u.id]) for u in utts),
        "computed_tokens": 0,
        "seconds": 0.0,
        "shards_written": 0,
    }
    def label(shard: list[Utterance]) -> tuple[dict, int]:
        if kind == "bert":
            plan = {u.id: utterance_windows(u, list(own[u.id]), mode, window, docs) for u in shard}
            todo = list(dict.fromkeys(w for ws in plan.values() for w in ws if w not in cache))
            cache.update(zip(todo, fast_window_labels(teacher.model, todo, cfg, teacher.mask_id)))
            stats["computed_tokens"] += sum(w.length for w in todo)
            rows = {uid: tuple(np.concatenate(a) for a in zip(*(cache[w] for w in ws))) for uid, ws in plan.items()}
        else:
            todo = list(dict.fromkeys(own[u.id] for u in shard if own[u.id] not in cache))
            cache.update(zip(todo, lm_labels(teacher, todo, cfg)))
            stats["computed_tokens"] += sum(len(t) for t in todo)
            rows = {u.id: cache[own[u.id]] for u in shard}
        return rows, sum(len(own[u.id]) for u in shard)

    write_label_shards(out_dir, shards, label, tok.vocab_size, stats, progress=progress,
                       stop_after_shards=stop_after_shards)
    return stats
