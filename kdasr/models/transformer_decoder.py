"""Transformer decoder (DESIGN.md §4's "fast family"): pre-norm self-attention, cross-attention
over the encoder output, feed-forward; written with plain ops so the step exports to ONNX.

It has the same four entry points as the LSTM decoder (kdasr.models.decoder), so the trainer,
the torch reference decoders and the export wrappers treat both alike:
  memory_keys(memory)                       per-utterance work, once: the cross-attention keys and
                                            values of every layer, [(k, v)] each [B, H, T, dh]
  initial_state(memory, mask)               an empty self-attention KV cache (t = 0 past steps)
  step(tokens, state, memory, keys, mask)   one token for N hypotheses -> (logits [N, V], state
                                            whose cache has one more step); keys and mask are
                                            per utterance, shared by its N / B consecutive rows
  forward(memory, mask, tokens_in)          teacher forcing, all U positions at once (causal)

A step costs O(t + T) for attention and O(1) for everything else: the prefix is never re-run.
Positions are sinusoids of the step index (no table, so no length limit)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig

NEG = -1e4  # additive mask value (finite, like the encoder's: fp16/int8 graphs stay NaN-free)


@dataclass
class TransformerState:
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: self-attention keys, values [B, H, t, dh]


def position_encoding(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoids of (float) positions pos [...] -> [..., dim], sin/cos interleaved."""
    inv = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=pos.device) * (-math.log(10000.0) / dim))
    angle = pos.to(torch.float32)[..., None] * inv
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """q [B, H, u, dh], k/v [B, H, t, dh], additive bias broadcastable to [B, H, u, t] -> [B, H, u, dh]."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.d_head = heads, d // heads
        self.self_norm = nn.LayerNorm(d)
        self.self_qkv = nn.Linear(d, 3 * d)
        self.self_proj = nn.Linear(d, d)
        self.cross_norm = nn.LayerNorm(d)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(d, 2 * d)
        self.cross_proj = nn.Linear(d, d)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d))
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor, parts: int, one_step: bool) -> torch.Tensor:
        """[B, u, parts*D] -> [parts, B, H, u, dh]. A step works on x [B, parts*D] (u = 1): its
        reshapes have constant shapes and its Linears are 2-D (one Gemm each, bias included), so the
        step graph has few nodes (its cost at these sizes is mostly per node)."""
        if one_step:
            return x.reshape(-1, parts, self.heads, 1, self.d_head).transpose(0, 1)
        b, u, _ = x.shape
        return x.reshape(b, u, parts, self.heads, self.d_head).permute(2, 0, 3, 1, 4)

    def _merge(self, x: torch.Tensor, one_step: bool) -> torch.Tensor:
        """[B, H, u, dh] -> [B, u, D] ([B, D] in a step)."""
        if one_step:
            return x.reshape(-1, self.heads * self.d_head)
        b, h, u, dh = x.shape
        return x.transpose(1, 2).reshape(b, u, h * dh)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys and values of this layer, [B, H, T, dh] each (once per utterance)."""
        k, v = self._split(self.cross_kv(memory), 2, one_step=False)
        return k, v

    def _rest(self, x, ck, cv, cross_bias, one_step: bool) -> torch.Tensor:
        q = self._split(self.cross_q(self.cross_norm(x)), 1, one_step)[0]
        x = x + self.drop(self.cross_proj(self._merge(self._cross(q, ck, cv, cross_bias, one_step), one_step)))
        return x + self.drop(self.ff(self.ff_norm(x)))

    def _cross(self, q, ck, cv, cross_bias, one_step: bool) -> torch.Tensor:
        """Cross-attention. In a step, q [N, H, 1, dh] holds K = N / B hypotheses per utterance of
        ck/cv [B, H, T, dh]: they attend as K queries of their utterance (one [K, T] product per
        utterance and head, never a copy of its keys per hypothesis)."""
        if not one_step:
            return attend(q, ck, cv, cross_bias)
        b, h, dh = ck.shape[0], self.heads, self.d_head
        out = attend(q.reshape(b, -1, h, dh).transpose(1, 2), ck, cv, cross_bias)  # [B, H, K, dh]
        return out.transpose(1, 2).reshape(-1, h, 1, dh)

    def forward(self, x, causal_bias, ck, cv, cross_bias) -> torch.Tensor:
        q, k, v = self._split(self.self_qkv(self.self_norm(x)), 3, one_step=False)
        x = x + self.drop(self.self_proj(self._merge(attend(q, k, v, causal_bias), one_step=False)))
        return self._rest(x, ck, cv, cross_bias, one_step=False)

    def step(self, x, k_past, v_past, ck, cv, cross_bias):
        """x [B, D], past [B, H, t, dh] -> (x, k, v with t + 1 steps)."""
        q, k, v = self._split(self.self_qkv(self.self_norm(x)), 3, one_step=True)
        k, v = torch.cat([k_past, k], dim=2), torch.cat([v_past, v], dim=2)
        x = x + self.drop(self.self_proj(self._merge(attend(q, k, v, None), one_step=True)))
        return self._rest(x, ck, cv, cross_bias, one_step=True), k, v


def cross_bias(mask: torch.Tensor) -> torch.Tensor:
    """Bool [B, T] (True = valid frame) -> additive bias [B, 1, 1, T]."""
    return (~mask).to(torch.float32)[:, None, None, :] * NEG


class TransformerDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        if d % cfg.decoder_heads:
            raise ValueError(f"d_model {d} is not divisible by decoder_heads {cfg.decoder_heads}")
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.scale = math.sqrt(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.decoder_heads, cfg.decoder_ff_dim, cfg.dropout) for _ in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.output = nn.Linear(d, cfg.vocab_size)
        self.d_model, self.heads = d, cfg.decoder_heads

    def _embed(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embed(tokens) * self.scale + position_encoding(pos, self.d_model))

    def memory_keys(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.memory_kv(memory) for layer in self.layers]

    def initial_state(self, memory: torch.Tensor, mask: torch.Tensor) -> TransformerState:
        b, dh = memory.shape[0], self.d_model // self.heads
        empty = memory.new_zeros(b, self.heads, 0, dh)
        return TransformerState([(empty, empty) for _ in self.layers])

    def step(
        self,
        tokens: torch.Tensor,
        state: TransformerState,
        memory: torch.Tensor,
        keys: list[tuple[torch.Tensor, torch.Tensor]],
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, TransformerState]:
        """tokens [N] (previous outputs) -> logits [N, V] and the state with one more cached step;
        keys [(k, v) [B, H, T, dh]] and mask [B, T] per utterance, N / B hypotheses each."""
        t = state.kv[0][0].shape[2]  # every hypothesis of a step has the same prefix length
        x = self._embed(tokens, torch.zeros_like(tokens) + t)  # [B, D]
        bias = cross_bias(mask)
        new = []
        for layer, (k_past, v_past), (ck, cv) in zip(self.layers, state.kv, keys):
            x, k, v = layer.step(x, k_past, v_past, ck, cv, bias)
            new.append((k, v))
        return self.output(self.norm(x)), TransformerState(new)

    def forward(self, memory: torch.Tensor, mask: torch.Tensor, tokens_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens_in [B, U] -> logits [B, U, V] (position u sees tokens 0..u)."""
        u = tokens_in.shape[1]
        x = self._embed(tokens_in, torch.arange(u, device=tokens_in.device))
        causal = torch.ones(u, u, dtype=torch.bool, device=tokens_in.device).triu(1)
        causal_bias = torch.zeros(u, u, device=x.device).masked_fill(causal, NEG)
        bias = cross_bias(mask)
        for layer, (ck, cv) in zip(self.layers, self.memory_keys(memory)):
            x = layer(x, causal_bias, ck, cv, bias)
        return self.output(self.norm(x))
