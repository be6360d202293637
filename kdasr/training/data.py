"""Training examples: precomputed features plus token ids (and, for KD, the teacher's soft labels
per token), and padding into batches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..data.manifest import Utterance
from ..text import Tokenizer
from .features import FeatureSet


@dataclass
class Examples:
    ids: list[str]
    feats: list[np.ndarray]
    tokens: list[list[int]]
    texts: list[str]
    # per example: (ids [n, K], probs [n, K]) for its n tokens, or None (no teacher for it)
    soft: list[tuple[np.ndarray, np.ndarray] | None] | None = None
    # 10 ms frames per row of `feats` (2 for cached whisper encoder states): batches are sized in 10 ms frames
    frame_scale: int = 1

    @property
    def lengths(self) -> list[int]:
        return [f.shape[0] * self.frame_scale for f in self.feats]


def make_examples(utts: list[Utterance], features: FeatureSet, tokenizer: Tokenizer) -> Examples:
    text_by_id = {u.id: u.text for u in utts}
    ids, feats, tokens, texts = [], [], [], []
    for uid, f in zip(features.ids, features.feats):
        toks = tokenizer.encode(text_by_id[uid])
        if not toks or f.shape[0] < 16:
            continue
        ids.append(uid), feats.append(f), tokens.append(toks), texts.append(text_by_id[uid])
    return Examples(ids, feats, tokens, texts)


@dataclass
class Batch:
    feats: torch.Tensor  # [B, T, F]
    feat_lens: torch.Tensor  # [B]
    tokens_in: torch.Tensor  # [B, U+1]  <bos> y
    targets: torch.Tensor  # [B, U+1]  y <eos>, padded with pad_id
    ctc_targets: torch.Tensor  # [B, U]
    target_lens: torch.Tensor  # [B]
    soft_ids: torch.Tensor | None = None  # [B, U+1, K] teacher's top-K ids per target position
    soft_probs: torch.Tensor | None = None  # [B, U+1, K]
    soft_mask: torch.Tensor | None = None  # [B, U+1] True where a teacher row exists (never <eos>)

    def to(self, device: str | torch.device) -> Batch:
        if str(device) == "cpu":
            return self
        return Batch(
            **{f.name: None if (v := getattr(self, f.name)) is None else v.to(device) for f in dataclasses.fields(self)}
        )


def collate(ex: Examples, idx: list[int], tok: Tokenizer) -> Batch:
    feats = [ex.feats[i] for i in idx]
    toks = [ex.tokens[i] for i in idx]
    t_max, u_max = max(f.shape[0] for f in feats), max(len(t) for t in toks)
    x = np.zeros((len(idx), t_max, feats[0].shape[1]), dtype=np.float32)
    tin = np.full((len(idx), u_max + 1), tok.pad_id, dtype=np.int64)
    tgt = np.full((len(idx), u_max + 1), tok.pad_id, dtype=np.int64)
    ctc = np.full((len(idx), u_max), tok.pad_id, dtype=np.int64)
    for b, (f, t) in enumerate(zip(feats, toks)):
        x[b, : f.shape[0]] = f
        tin[b, : len(t) + 1] = [tok.bos_id, *t]
        tgt[b, : len(t) + 1] = [*t, tok.eos_id]
        ctc[b, : len(t)] = t
    batch = Batch(
        torch.from_numpy(x),
        torch.tensor([f.shape[0] for f in feats]),
        torch.from_numpy(tin),
        torch.from_numpy(tgt),
        torch.from_numpy(ctc),
        torch.tensor([len(t) for t in toks]),
    )
    if ex.soft is not None:
        rows = [ex.soft[i] for i in idx]
        k = next((r[0].shape[1] for r in rows if r is not None), 1)
        ids = np.zeros((len(idx), u_max + 1, k), dtype=np.int64)
        probs = np.zeros((len(idx), u_max + 1, k), dtype=np.float32)
        mask = np.zeros((len(idx), u_max + 1), dtype=bool)
        for b, r in enumerate(rows):
            if r is not None:
                n = r[0].shape[0]
                ids[b, :n], probs[b, :n], mask[b, :n] = r[0], r[1], True
        batch.soft_ids, batch.soft_probs = torch.from_numpy(ids), torch.from_numpy(probs)
        batch.soft_mask = torch.from_numpy(mask)
    return batch
