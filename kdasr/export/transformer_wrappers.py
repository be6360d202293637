"""Export wrappers for the Transformer decoder (kdasr.models.transformer_decoder). Like wrappers.py,
each owns its graph's ONNX contract: input/output names, dynamic axes, dummy inputs.

The per-utterance work is done once, by the encoder graph: it returns every decoder layer's
cross-attention keys and values (`cross_k_<i>`, `cross_v_<i>`, [B, H, T, dh]) beside the memory,
so a step never projects the encoder output again. The step graph carries the self-attention KV
cache, one key and one value tensor per layer (`self_k_<i>`, `self_v_<i>`, [N, H, t, dh]), which
grows by one along t each step; it starts empty (t = 0)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.config import ModelConfig
from ..models.encoder import padding_mask
from ..models.student import Seq2SeqStudent
from ..models.transformer_decoder import TransformerState
from ..spec.graph_spec import BATCH, FRAMES, STEPS, UTTERANCES, EncoderSpec, GraphSpec, MemoryInput, StateTensor
from .wrappers import StepGraphSpec, dynamic_axes_of


def cross_names(layers: int) -> list[str]:
    return [f"cross_{kv}_{i}" for i in range(layers) for kv in ("k", "v")]


def cache_names(layers: int) -> list[str]:
    return [f"self_{kv}_{i}" for i in range(layers) for kv in ("k", "v")]


class TransformerEncoderGraph(nn.Module):
    """waveform [B, S] + lengths [B] -> memory [B, T, D], memory_lens [B], ctc_logprobs [B, T, V],
    then cross_k_0, cross_v_0, ... [B, H, T, dh]. The log-mel frontend is inside the graph."""

    input_names = ["waveform", "waveform_lens"]

    def __init__(self, model: Seq2SeqStudent) -> None:
        super().__init__()
        self.model = model
        self.output_names = list(self.spec(model.cfg).graph.outputs)
        # the frames axis of each output that has one (the parity check compares valid frames only)
        self.frame_axes = {"memory": 1, "ctc_logprobs": 1, **{n: 2 for n in cross_names(model.cfg.decoder_layers)}}

    @staticmethod
    def spec(cfg: ModelConfig, file: str = "encoder.onnx") -> EncoderSpec:
        outputs = ("memory", "memory_lens", "ctc_logprobs", *cross_names(cfg.decoder_layers))
        return EncoderSpec(GraphSpec({"fp32": file}, ("waveform", "waveform_lens"), outputs),
                           waveform="waveform", waveform_lens="waveform_lens", lens="memory_lens",
                           ctc_logprobs="ctc_logprobs")

    def forward(self, waveform: torch.Tensor, waveform_lens: torch.Tensor):
        memory, lens = self.model.encode_waveform(waveform, waveform_lens)
        ctc = torch.log_softmax(self.model.ctc_head(memory), dim=-1)
        cross = [t for kv in self.model.decoder.memory_keys(memory) for t in kv]
        return (memory, lens, ctc, *cross)

    def dummy_inputs(self, batch: int = 2, seconds: float = 3.0) -> tuple[torch.Tensor, ...]:
        s = int(self.model.cfg.sample_rate * seconds)
        return torch.randn(batch, s) * 0.1, torch.tensor([s] + [s * 2 // 3] * (batch - 1), dtype=torch.int64)

    def dynamic_axes(self) -> dict:
        axes = {"waveform": {0: "batch", 1: "samples"}, "waveform_lens": {0: "batch"}, "memory_lens": {0: "batch"}}
        return {**axes, **{n: {0: "batch", a: "frames"} for n, a in self.frame_axes.items()}}


class TransformerDecoderStepGraph(StepGraphSpec, nn.Module):
    """One decoding step for N hypotheses of B utterances that all have t past tokens:
    (tokens [N], self_k_0, self_v_0, ... [N, H, t, dh], cross_k_0, cross_v_0, ... [B, H, T, dh],
    memory_lens [B]) -> (logprobs [N, V], self_k_0_out, self_v_0_out, ... [N, H, t + 1, dh]).
    The hypotheses come in N / B consecutive rows per utterance, which share its cross keys/values."""

    # parity-check cases (utterances, frames, past steps, hypotheses per utterance): unlike the
    # export dummy (2, 40, 4, 2), and t = 0
    check_cases = [(1, 17, 0, 1), (2, 93, 5, 3), (2, 250, 11, 1)]

    def __init__(self, model: Seq2SeqStudent) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.cfg = model.cfg
        spec = self.spec(model.cfg)
        # forward's argument order: tokens, the caches (self_k_0, self_v_0, ...), the memory inputs
        self.state_names = [s.name for s in spec.state]
        self.memory_names = [m.name for m in spec.memory]
        self.input_names = list(spec.graph.inputs)
        self.output_names = list(spec.graph.outputs)

    @staticmethod
    def state_tensors(cfg: ModelConfig) -> tuple[StateTensor, ...]:
        """The self-attention KV cache per layer: starts with 0 steps, one longer after each step."""
        h, dh = cfg.decoder_heads, cfg.d_model // cfg.decoder_heads
        return tuple(StateTensor(n, (BATCH, h, STEPS, dh), output=f"{n}_out") for n in cache_names(cfg.decoder_layers))

    @staticmethod
    def memory_inputs(cfg: ModelConfig) -> tuple[MemoryInput, ...]:
        """Per-utterance encoder outputs the step reads, one row per utterance: every layer's
        cross-attention keys/values and the valid frame counts."""
        h, dh = cfg.decoder_heads, cfg.d_model // cfg.decoder_heads
        cross = tuple(MemoryInput(n, (UTTERANCES, h, FRAMES, dh), source=n) for n in cross_names(cfg.decoder_layers))
        return (*cross, MemoryInput("memory_lens", (UTTERANCES,), "int64", source="memory_lens"))

    def forward(self, tokens: torch.Tensor, *rest: torch.Tensor):
        n = len(self.state_names)
        cache, cross, memory_lens = rest[:n], rest[n:-1], rest[-1]
        pairs = lambda xs: [(xs[i], xs[i + 1]) for i in range(0, len(xs), 2)]  # noqa: E731
        mask = padding_mask(memory_lens, cross[0].shape[2])
        logits, st = self.decoder.step(tokens, TransformerState(pairs(cache)), None, pairs(cross), mask)
        return (torch.log_softmax(logits, dim=-1), *(t for kv in st.kv for t in kv))

    def head_dims(self) -> tuple[int, int]:
        return self.cfg.decoder_heads, self.cfg.d_model // self.cfg.decoder_heads

    def dummy_inputs(self, batch: int = 2, frames: int = 40, past: int = 4, beams: int = 2) -> tuple[torch.Tensor, ...]:
        """batch utterances, `beams` hypotheses each."""
        h, dh, n = *self.head_dims(), batch * beams
        lens = torch.tensor([frames] + [max(1, frames - 5)] * (batch - 1), dtype=torch.int64)
        cache = [torch.randn(n, h, past, dh) for _ in self.state_names]
        cross = [torch.randn(batch, h, frames, dh) for _ in self.memory_names[:-1]]
        return (torch.randint(0, self.cfg.vocab_size, (n,)), *cache, *cross, lens)

    def dynamic_axes(self) -> dict:
        spec = self.spec(self.cfg)
        axes = {"tokens": {0: "batch"}, "logprobs": {0: "batch"}, **dynamic_axes_of([*spec.state, *spec.memory])}
        # the output cache is one step longer than the input: its own dim name
        return axes | {s.output: {0: "batch", 2: "steps_plus_one"} for s in spec.state}
