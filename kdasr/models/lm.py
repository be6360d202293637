"""Left-to-right Transformer LM on the ASR's sentencepiece units (the LM-KD teacher, shallow
fusion and rescoring). Plain ops only (no nn.TransformerEncoder fast path), so it exports.

Two entry points share the weights:
  forward(tokens [B, U]) -> logits [B, U, V]            causal, for training and scoring
  step(tokens [B], cache) -> (logits [B, V], new_cache)  one token with an explicit KV cache

The cache is one tensor [L, 2, B, H, t, dh] (layer, key/value, batch, head, past steps, head dim);
a list of per-layer (k, v) pairs [B, H, t, dh] is accepted too and given back as a list. `None`,
`[]` or t = 0 starts a sequence. Positions are learned embeddings indexed by t, so a step costs
O(1) in the prefix length apart from attention itself. Sequences start with <bos> (id 2); the
LM predicts the next unit and <eos> (id 3).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

Cache = torch.Tensor | list[tuple[torch.Tensor, torch.Tensor]] | None


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1
    max_len: int = 512  # longest sequence (prefix + step) the position table covers

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class CausalBlock(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.heads, self.d_head = cfg.heads, d // cfg.heads
        self.att_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.ff_dim), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.ff_dim, d))
        self.drop = nn.Dropout(cfg.dropout)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.att_norm(x)).reshape(b, t, 3, self.heads, self.d_head).permute(2, 0, 3, 1, 4)
        return q, k, v  # each [B, H, t, dh]

    def _attend(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias) -> torch.Tensor:
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d_head)
        if bias is not None:
            scores = scores + bias
        att = self.drop(torch.softmax(scores, dim=-1))
        b, _, t, _ = q.shape
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, t, -1)
        x = x + self.drop(self.proj(out))
        return x + self.drop(self.ff(self.ff_norm(x)))

    def forward(self, x: torch.Tensor, causal_bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        return self._attend(x, q, k, v, causal_bias)

    def step(self, x: torch.Tensor, k_past: torch.Tensor, v_past: torch.Tensor):
        """x [B, 1, D] with past keys/values [B, H, t, dh] -> (x, k [B, H, t+1, dh], v)."""
        q, k, v = self._qkv(x)
        k, v = torch.cat([k_past, k], dim=2), torch.cat([v_past, v], dim=2)
        return self._attend(x, q, k, v, None), k, v


class TransformerLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(CausalBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, U] -> next-token logits [B, U, V] (position u sees tokens 0..u)."""
        u = tokens.shape[1]
        pos = torch.arange(u, device=tokens.device)
        x = self.drop(self.embed(tokens) + self.pos(pos)[None])
        causal = torch.ones(u, u, dtype=torch.bool, device=tokens.device).triu(1)
        bias = torch.zeros(u, u, device=tokens.device, dtype=x.dtype).masked_fill(causal, -1e4)
        for block in self.blocks:
            x = block(x, bias)
        return self.output(self.norm(x))

    def empty_cache(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        c = self.cfg
        return torch.zeros(c.layers, 2, batch, c.heads, 0, c.d_model // c.heads, device=device)

    def step(self, tokens: torch.Tensor, cache: Cache = None) -> tuple[torch.Tensor, Cache]:
        """tokens [B] (the last token of each prefix) -> (logits [B, V], cache with one more step)."""
        as_list = isinstance(cache, list)
        if cache is None or (as_list and not cache):
            cache = self.empty_cache(tokens.shape[0], tokens.device)
        elif as_list:
            cache = torch.stack([torch.stack([k, v]) for k, v in cache])
        t = cache.shape[4]
        pos = torch.full_like(tokens, t)
        x = self.drop(self.embed(tokens) + self.pos(pos)).unsqueeze(1)  # [B, 1, D]
        new = []
        for i, block in enumerate(self.blocks):
            x, k, v = block.step(x, cache[i, 0], cache[i, 1])
            new.append(torch.stack([k, v]))
        logits = self.output(self.norm(x[:, 0]))
        new_cache = torch.stack(new)
        if as_list:
            return logits, [(layer[0], layer[1]) for layer in new_cache]
        return logits, new_cache


def build_lm(cfg: LMConfig) -> TransformerLM:
    return TransformerLM(cfg)
