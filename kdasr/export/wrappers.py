"""Export wrappers: each owns its graph's ONNX contract — input/output names, dynamic axes
and the dummy inputs used for tracing (DESIGN.md guideline 6)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.decoder import DecoderState
from ..models.encoder import padding_mask
from ..models.student import Seq2SeqStudent


class EncoderGraph(nn.Module):
    """waveform [B, S] + lengths [B] -> memory [B, T, D], memory_lens [B], memory_keys [B, T, A],
    ctc_logprobs [B, T, V]. The log-mel frontend is inside the graph."""

    input_names = ["waveform", "waveform_lens"]
    output_names = ["memory", "memory_lens", "memory_keys", "ctc_logprobs"]

    def __init__(self, model: Seq2SeqStudent) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor, waveform_lens: torch.Tensor):
        memory, lens = self.model.encode_waveform(waveform, waveform_lens)
        keys = self.model.decoder.memory_keys(memory)
        ctc = torch.log_softmax(self.model.ctc_head(memory), dim=-1)
        return memory, lens, keys, ctc

    def dummy_inputs(self, batch: int = 2, seconds: float = 3.0) -> tuple[torch.Tensor, ...]:
        s = int(self.model.cfg.sample_rate * seconds)
        return torch.randn(batch, s) * 0.1, torch.tensor([s] + [s * 2 // 3] * (batch - 1), dtype=torch.int64)

    @staticmethod
    def dynamic_axes() -> dict:
        return {
            "waveform": {0: "batch", 1: "samples"},
            "waveform_lens": {0: "batch"},
            "memory": {0: "batch", 1: "frames"},
            "memory_lens": {0: "batch"},
            "memory_keys": {0: "batch", 1: "frames"},
            "ctc_logprobs": {0: "batch", 1: "frames"},
        }


class DecoderStepGraph(nn.Module):
    """One decoding step for N hypotheses with explicit state:
    (tokens [N], h, c [N, H], context [N, D], attention [N, T], memory [N, T, D],
    memory_keys [N, T, A], memory_lens [N]) -> (logprobs [N, V], h, c, context, attention)."""

    input_names = ["tokens", "h", "c", "context", "attention", "memory", "memory_keys", "memory_lens"]
    output_names = ["logprobs", "h_out", "c_out", "context_out", "attention_out"]

    def __init__(self, model: Seq2SeqStudent) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.cfg = model.cfg

    def forward(self, tokens, h, c, context, attention, memory, memory_keys, memory_lens):
        mask = padding_mask(memory_lens, memory.shape[1])
        logits, st = self.decoder.step(tokens, DecoderState(h, c, context, attention), memory, memory_keys, mask)
        return torch.log_softmax(logits, dim=-1), st.h, st.c, st.context, st.attention

    def dummy_inputs(self, batch: int = 3, frames: int = 40) -> tuple[torch.Tensor, ...]:
        c = self.cfg
        lens = torch.tensor([frames] + [frames - 5] * (batch - 1), dtype=torch.int64)
        memory = torch.randn(batch, frames, c.d_model)
        att = padding_mask(lens, frames).float() / lens[:, None].float()
        return (
            torch.randint(0, c.vocab_size, (batch,)),
            torch.randn(batch, c.decoder_hidden),
            torch.randn(batch, c.decoder_hidden),
            torch.randn(batch, c.d_model),
            att,
            memory,
            torch.randn(batch, frames, c.attention_dim),
            lens,
        )

    @staticmethod
    def dynamic_axes() -> dict:
        axes = {n: {0: "batch"} for n in DecoderStepGraph.input_names + DecoderStepGraph.output_names}
        for n in ("attention", "memory", "memory_keys", "attention_out"):
            axes[n] = {0: "batch", 1: "frames"}
        return axes
