"""The paper's encoder (Futami et al. 2020): 3 log-mel frames stacked into one, then a 5-layer
bidirectional LSTM (320 units per direction).

The backward direction runs a forward LSTM over each utterance reversed *within its own length*
(a gather, not packed sequences), so padding never reaches real frames, results do not depend on
what an utterance is batched with, and the graph exports to ONNX as plain LSTM + Gather ops.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


def stacked_lengths(lens: torch.Tensor, stack: int) -> torch.Tensor:
    return torch.div(lens, stack, rounding_mode="floor")


def reverse_within(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """x [B, T, D] with row b's first lens[b] steps reversed and the padding left in place."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    idx = torch.where(t < lens[:, None], lens[:, None] - 1 - t, t)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class BiLSTMLayer(nn.Module):
    def __init__(self, d_in: int, hidden: int) -> None:
        super().__init__()
        self.fwd = nn.LSTM(d_in, hidden, batch_first=True)
        self.bwd = nn.LSTM(d_in, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        f, _ = self.fwd(x)
        b, _ = self.bwd(reverse_within(x, lens))
        return torch.cat([f, reverse_within(b, lens)], dim=-1)


class BLSTMEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.stack = cfg.frame_stack
        d_in = cfg.n_mels * cfg.frame_stack
        self.layers = nn.ModuleList()
        for _ in range(cfg.blstm_layers):
            self.layers.append(BiLSTMLayer(d_in, cfg.blstm_hidden))
            d_in = 2 * cfg.blstm_hidden
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Identity() if d_in == cfg.d_model else nn.Linear(d_in, cfg.d_model)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [B, T, n_mels] -> states [B, T // stack, d_model], lengths."""
        b, t, f = feats.shape
        t_out = t // self.stack
        x = feats[:, : t_out * self.stack].reshape(b, t_out, f * self.stack)
        lens = stacked_lengths(lens, self.stack)
        mask = (torch.arange(t_out, device=x.device)[None, :] < lens[:, None]).unsqueeze(-1).to(x.dtype)
        for layer in self.layers:
            x = self.drop(layer(x, lens)) * mask
        return self.out(x), lens
