"""LSTM decoder with location-aware attention (the paper's decoder), one step at a time.

The step is the exportable unit: explicit state in, state out (DESIGN.md §3). The attention
keys W_k·memory are computed once per utterance by the encoder graph, so a step costs O(T)
for attention only, independent of the prefix length; a beam's hypotheses share their
utterance's memory and keys (broadcast, not copied).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig


@dataclass
class DecoderState:
    h: torch.Tensor  # [B, H]
    c: torch.Tensor  # [B, H]
    context: torch.Tensor  # [B, D] last attention context
    attention: torch.Tensor  # [B, T] last attention weights (for location awareness)


class LocationAwareDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.cell = nn.LSTMCell(cfg.embed_dim + cfg.d_model, cfg.decoder_hidden)
        self.key = nn.Linear(cfg.d_model, cfg.attention_dim)
        self.query = nn.Linear(cfg.decoder_hidden, cfg.attention_dim, bias=False)
        self.location_conv = nn.Conv1d(
            1, cfg.location_channels, cfg.location_kernel, padding=cfg.location_kernel // 2, bias=False
        )
        self.location = nn.Linear(cfg.location_channels, cfg.attention_dim, bias=False)
        self.energy = nn.Linear(cfg.attention_dim, 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(cfg.decoder_hidden + cfg.d_model, cfg.vocab_size)
        self.hidden, self.d_model = cfg.decoder_hidden, cfg.d_model

    def memory_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key(memory)

    def initial_state(self, memory: torch.Tensor, mask: torch.Tensor) -> DecoderState:
        b = memory.shape[0]
        zeros = memory.new_zeros(b, self.hidden)
        uniform = mask.to(memory.dtype) / mask.sum(1, keepdim=True).clamp(min=1).to(memory.dtype)
        return DecoderState(zeros, zeros.clone(), memory.new_zeros(b, self.d_model), uniform)

    def step(
        self,
        tokens: torch.Tensor,
        state: DecoderState,
        memory: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, DecoderState]:
        """tokens [N] (previous outputs) -> logits [N, V] and the next state. memory [B, T, D], keys
        [B, T, A] and mask [B, T] are per utterance; the N = B x K hypotheses come in K consecutive
        rows per utterance (K = 1 in training), and the attention broadcasts each utterance's keys
        and memory over its K rows: a beam search never copies them per hypothesis."""
        state = self.advance(tokens, state, memory, keys, mask)
        return self.output(self.drop(torch.cat([state.h, state.context], dim=-1))), state

    def advance(self, tokens: torch.Tensor, state: DecoderState, memory: torch.Tensor, keys: torch.Tensor,
                mask: torch.Tensor) -> DecoderState:
        """One step of the recurrence and the attention, without the output layer (step() adds it)."""
        x = torch.cat([self.drop(self.embed(tokens)), state.context], dim=-1)
        h, c = self.cell(x, (state.h, state.c))
        b, t = memory.shape[0], memory.shape[1]
        loc = self.location(self.location_conv(state.attention.unsqueeze(1)).transpose(1, 2))  # [N, T, A]
        query = self.query(h).reshape(b, -1, 1, loc.shape[-1])  # [B, K, 1, A]
        e = self.energy(torch.tanh(keys.unsqueeze(1) + query + loc.reshape(b, -1, t, loc.shape[-1])))  # [B, K, T, 1]
        att = torch.softmax(e.squeeze(-1).masked_fill(~mask.unsqueeze(1), -1e4), dim=-1)  # [B, K, T]
        context = torch.matmul(att, memory)  # [B, K, D]
        att, context = att.reshape(-1, t), context.reshape(-1, memory.shape[2])
        return DecoderState(h, c, context, att)

    def forward(self, memory: torch.Tensor, mask: torch.Tensor, tokens_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens_in [B, U] -> logits [B, U, V]."""
        keys = self.memory_keys(memory)
        state = self.initial_state(memory, mask)
        outs = []
        for u in range(tokens_in.shape[1]):
            state = self.advance(tokens_in[:, u], state, memory, keys, mask)
            outs.append(torch.cat([state.h, state.context], dim=-1))
        # the output layer once over every step: one large matmul (forward and backward) instead of U small
        # ones, the same arithmetic as step() per position
        return self.output(self.drop(torch.stack(outs, dim=1)))
