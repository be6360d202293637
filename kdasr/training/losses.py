"""Training losses: label-smoothed CE for the attention decoder and CTC for the auxiliary head."""

from __future__ import annotations

import torch
from torch import nn


def smoothed_token_ce(logp: torch.Tensor, targets: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token CE against (1-ε)·onehot + ε·uniform, per-token CE against uniform) from log-probs."""
    nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    uniform = -logp.mean(-1)
    return (1.0 - smoothing) * nll + smoothing * uniform, uniform


def label_smoothed_ce(logits: torch.Tensor, targets: torch.Tensor, pad_id: int, smoothing: float) -> torch.Tensor:
    """Mean over non-pad target tokens of CE against (1-ε)·onehot + ε·uniform."""
    valid = targets != pad_id
    loss, _ = smoothed_token_ce(torch.log_softmax(logits.float(), dim=-1), targets, smoothing)
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def ctc_loss(
    ctc_logits: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor, blank_id: int
) -> torch.Tensor:
    logp = torch.log_softmax(ctc_logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    loss = nn.functional.ctc_loss(
        logp, targets, enc_lens, target_lens, blank=blank_id, reduction="sum", zero_infinity=True
    )
    return loss / target_lens.sum().clamp(min=1)


def kd_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    soft_ids: torch.Tensor,
    soft_probs: torch.Tensor,
    soft_mask: torch.Tensor,
    pad_id: int,
    smoothing: float,
    lam: float,
    soft_smoothing: float = 0.1,
) -> dict[str, torch.Tensor]:
    """λ·CE(soft) + (1−λ)·CE(hard, label smoothing), mean over non-pad target tokens (DESIGN.md §4).

    logits [B, U, V]; targets [B, U]; soft_ids/soft_probs [B, U, K] (each row a teacher's top-K
    distribution, summing to 1); soft_mask [B, U] True where a teacher row exists. The soft target
    is (1−σ)·top-K + σ·uniform over the vocabulary; positions without a teacher (<eos>, padding)
    use the hard target for both terms. Returns {"loss", "hard", "soft"} (soft/hard are means of
    each term over the tokens; "loss" is what to minimise). λ = 0 gives exactly the baseline.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    valid = targets != pad_id
    hard, uniform = smoothed_token_ce(logp, targets, smoothing)
    topk = -(soft_probs.float() * logp.gather(-1, soft_ids.long())).sum(-1)
    soft = torch.where(soft_mask & valid, (1.0 - soft_smoothing) * topk + soft_smoothing * uniform, hard)
    per_token = lam * soft + (1.0 - lam) * hard
    n = valid.sum().clamp(min=1)
    return {"loss": (per_token * valid).sum() / n, "hard": (hard * valid).sum() / n, "soft": (soft * valid).sum() / n}
