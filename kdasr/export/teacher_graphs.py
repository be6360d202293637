"""Export wrappers for the teachers used at inference (shallow fusion, n-best rescoring). Like
wrappers.py, each owns its ONNX contract: names, dynamic axes, dummy inputs.

- LMStepGraph: one LM step for N hypotheses with the KV cache in and out, so a step costs O(1)
  in the prefix length apart from attention itself.
- BertScoreGraph: masked-LM scoring for pseudo-log-likelihood: R rows (one per hypothesis x
  masked position), each with its masked position and target; only the masked position goes
  through the MLM head, and the graph returns log p(target | rest) per row."""

from __future__ import annotations

import torch
from torch import nn

from ..models.lm import TransformerLM
from ..spec.graph_spec import BATCH, STEPS, StateTensor


class LMStepGraph(nn.Module):
    """(tokens [N], cache [L, 2, N, H, t, dh]) -> (logprobs [N, V], cache_out [L, 2, N, H, t+1, dh])."""

    input_names = ["tokens", "cache"]
    output_names = ["logprobs", "cache_out"]

    def __init__(self, lm: TransformerLM) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, tokens: torch.Tensor, cache: torch.Tensor):
        logits, new = self.lm.step(tokens, cache)
        return torch.log_softmax(logits, dim=-1), new

    def state_tensor(self) -> StateTensor:
        """The KV cache as the spec's state: starts with 0 steps, one more per step."""
        c = self.lm.cfg
        return StateTensor("cache", (c.layers, 2, BATCH, c.heads, STEPS, c.d_model // c.heads), output="cache_out")

    def dummy_inputs(self, batch: int = 3, past: int = 4) -> tuple[torch.Tensor, ...]:
        c = self.lm.cfg
        cache = torch.randn(c.layers, 2, batch, c.heads, past, c.d_model // c.heads)
        return torch.randint(0, c.vocab_size, (batch,)), cache

    @staticmethod
    def dynamic_axes() -> dict:
        return {
            "tokens": {0: "batch"},
            "cache": {2: "batch", 4: "past"},
            "logprobs": {0: "batch"},
            "cache_out": {2: "batch", 4: "past_plus_one"},
        }


class BertScoreGraph(nn.Module):
    """(input_ids [R, L] with the mask already in place, attention_mask [R, L], positions [R],
    targets [R]) -> token_logprobs [R]."""

    input_names = ["input_ids", "attention_mask", "positions", "targets"]
    output_names = ["token_logprobs"]

    def __init__(self, model: nn.Module, mask_id: int) -> None:
        super().__init__()
        from ..teachers.mlm import mlm_body_and_head

        self.body, self.head = mlm_body_and_head(model)
        self.vocab_size = int(model.config.vocab_size)
        self.mask_id = mask_id

    def forward(self, input_ids, attention_mask, positions, targets):
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(input_ids.shape[0])
        logp = torch.log_softmax(self.head(hidden[rows, positions]), dim=-1)
        return logp[rows, targets]

    def dummy_inputs(self, rows: int = 5, length: int = 7) -> tuple[torch.Tensor, ...]:
        ids = torch.randint(5, self.vocab_size, (rows, length))
        att = torch.ones(rows, length, dtype=torch.int64)
        att[1:, length - 2 :] = 0
        positions = torch.arange(rows) % (length - 2)
        targets = ids[torch.arange(rows), positions].clone()
        ids[torch.arange(rows), positions] = self.mask_id
        return ids, att, positions, targets

    @staticmethod
    def dynamic_axes() -> dict:
        return {
            "input_ids": {0: "rows", 1: "length"},
            "attention_mask": {0: "rows", 1: "length"},
            "positions": {0: "rows"},
            "targets": {0: "rows"},
            "token_logprobs": {0: "rows"},
        }
