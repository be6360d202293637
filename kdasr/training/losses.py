"""Training losses: label-smoothed CE for the attention decoder and CTC for the auxiliary head."""

from __future__ import annotations

import torch
from torch import nn


def label_smoothed_ce(logits: torch.Tensor, targets: torch.Tensor, pad_id: int, smoothing: float) -> torch.Tensor:
    """Mean over non-pad target tokens of CE against (1-ε)·onehot + ε·uniform."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    valid = targets != pad_id
    nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    smooth = -logp.mean(-1)
    loss = (1.0 - smoothing) * nll + smoothing * smooth
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def ctc_loss(
    ctc_logits: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor, blank_id: int
) -> torch.Tensor:
    logp = torch.log_softmax(ctc_logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    loss = nn.functional.ctc_loss(
        logp, targets, enc_lens, target_lens, blank=blank_id, reduction="sum", zero_infinity=True
    )
    return loss / target_lens.sum().clamp(min=1)
