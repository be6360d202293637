"""Whisper as a KD student (issue 29 item 5): its encoder frozen (outputs cached once per
utterance), its decoder fine-tuned with kdasr's losses (training/losses.py: label-smoothed CE, or
λ·soft + (1 − λ)·hard with a teacher's top-K soft labels over whisper ids).

The model is transformers' WhisperForConditionalGeneration holding the CTranslate2 weights
(models/whisper_hf.py), run here as the exported step graph runs it (export/whisper_graphs.py):
cross-attention masked past each utterance's frames (memory_lens), logits from the tied
embedding. The encoder input is what the exported encoder graph sees: whisper's log-mel of the
utterance followed by `tail_seconds` of zero log-mel (`--no-pad-30 --tail`), or padded with zeros
to 30 s (`pad_30`), so the decoder trains on the memory it will decode from.

A target sequence is whisper's: prompt (<|startoftranscript|>, for multilingual models <|en|>
<|transcribe|>), <|notimestamps|>, the transcript's tokens (kdasr's lowercase text without
punctuation, encoded with a leading space as whisper writes it), <|endoftext|>. The loss covers
the text tokens and <|endoftext|>; the soft labels' rows are the text tokens'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.whisper_weights import CT2Checkpoint
from .losses import kd_loss, label_smoothed_ce

IGNORE = -100  # target padding and the prompt's positions (no loss)
NEG = -1e9


@dataclass
class WhisperBatch:
    memory: torch.Tensor  # [B, T, D] cached encoder output
    memory_lens: torch.Tensor  # [B]
    tokens_in: torch.Tensor  # [B, U] prompt + text, padded with <|endoftext|>
    targets: torch.Tensor  # [B, U] IGNORE over the prompt but its last token, then text + <|endoftext|>
    soft_ids: torch.Tensor | None = None  # [B, U, K] whisper ids, rows where soft_mask
    soft_probs: torch.Tensor | None = None
    soft_mask: torch.Tensor | None = None  # [B, U]


def make_batch(memories: list[np.ndarray], texts: list[list[int]], prompt: list[int], eot: int,
               soft: list[tuple[np.ndarray, np.ndarray] | None] | None = None) -> WhisperBatch:
    b, t_max = len(memories), max(m.shape[0] for m in memories)
    u_max = len(prompt) + max(len(t) for t in texts)
    mem = np.zeros((b, t_max, memories[0].shape[1]), np.float32)
    tin = np.full((b, u_max), eot, np.int64)
    tgt = np.full((b, u_max), IGNORE, np.int64)
    first = len(prompt) - 1  # the position that predicts the first text token
    for i, (m, t) in enumerate(zip(memories, texts)):
        mem[i, : m.shape[0]] = m
        tin[i, : len(prompt) + len(t)] = [*prompt, *t]
        tgt[i, first : first + len(t) + 1] = [*t, eot]
    batch = WhisperBatch(torch.from_numpy(mem), torch.tensor([m.shape[0] for m in memories]),
                         torch.from_numpy(tin), torch.from_numpy(tgt))
    if soft is not None:
        k = next((r[0].shape[1] for r in soft if r is not None), 1)
        ids, probs = np.zeros((b, u_max, k), np.int64), np.zeros((b, u_max, k), np.float32)
        mask = np.zeros((b, u_max), bool)
        for i, r in enumerate(soft):
            if r is not None:
                n = r[0].shape[0]
                ids[i, first : first + n], probs[i, first : first + n], mask[i, first : first + n] = r[0], r[1], True
        batch.soft_ids, batch.soft_probs, batch.soft_mask = map(torch.from_numpy, (ids, probs, mask))
    return batch


class WhisperStudent(nn.Module):
    """The decoder of a whisper checkpoint, trainable; `ct2_variables()` gives it back in CT2 names."""

    def __init__(self, ckpt: CT2Checkpoint, train_embeddings: bool = False) -> None:
        super().__init__()
        from ..models.whisper_hf import reference_model

        hf = reference_model(ckpt)
        hf.config._attn_implementation = "eager"  # the explicit float masks below are added to the scores
        hf.model.encoder = None  # frozen and cached: not needed, not trained
        self.hf = hf
        dec = hf.model.decoder
        dec.embed_tokens.requires_grad_(train_embeddings)  # tied with the output layer
        dec.embed_positions.requires_grad_(train_embeddings)

    @property
    def decoder(self):
        return self.hf.model.decoder

    def forward(self, memory: torch.Tensor, memory_lens: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        dec = self.decoder
        b, u = tokens.shape
        x = dec.embed_tokens(tokens) + dec.embed_positions.weight[:u]
        causal = torch.full((u, u), NEG, dtype=x.dtype, device=x.device).triu(1)[None, None]
        frames = torch.arange(memory.shape[1], device=x.device)
        cross = torch.zeros(b, 1, 1, memory.shape[1], dtype=x.dtype, device=x.device).masked_fill(
            (frames[None, :] >= memory_lens[:, None])[:, None, None, :], NEG)
        for layer in dec.layers:
            x = layer(x, causal, memory, encoder_attention_mask=cross, cache=None, use_cache=False)
        return torch.matmul(dec.layer_norm(x), dec.embed_tokens.weight.t())

    def ct2_variables(self) -> dict[str, np.ndarray]:
        from ..models.whisper_hf import ct2_decoder_variables

        return ct2_decoder_variables(self.hf)


def whisper_loss(model: WhisperStudent, batch: WhisperBatch, smoothing: float, kd_weight: float = 0.0,
                 kd_smoothing: float = 0.1) -> dict[str, torch.Tensor]:
    """kdasr's attention loss on whisper's logits: label-smoothed CE, or with soft labels in the
    batch and kd_weight > 0, λ·CE(soft) + (1 − λ)·CE(hard) (losses.kd_loss)."""
    logits = model(batch.memory, batch.memory_lens, batch.tokens_in)
    if batch.soft_ids is not None and kd_weight > 0:
        return kd_loss(logits, batch.targets, batch.soft_ids, batch.soft_probs, batch.soft_mask, IGNORE,
                       smoothing, kd_weight, kd_smoothing)
    return {"loss": label_smoothed_ce(logits, batch.targets, IGNORE, smoothing)}
