"""Export wrappers: each owns its graph's ONNX contract — input/output names, dynamic axes
and the dummy inputs used for tracing (DESIGN.md guideline 6) — and produces its part of the
model spec (kdasr/spec/modelspec.py): the decoder's state and memory inputs are declared once here, and
its names and dynamic axes follow from that declaration."""

from __future__ import annotations

import torch
from torch import nn

from ..models.config import ModelConfig
from ..models.decoder import DecoderState
from ..models.encoder import padding_mask
from ..models.student import Seq2SeqStudent
from ..spec.graph_spec import (
    BATCH,
    FRAMES,
    UTTERANCES,
    DecoderSpec,
    EncoderSpec,
    GraphSpec,
    MemoryInput,
    StateTensor,
    TensorSpec,
)


def dynamic_axes_of(tensors: list[TensorSpec]) -> dict[str, dict[int, str]]:
    """ONNX dynamic axes from the symbolic dims of a spec's tensors."""
    return {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in tensors}


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

    @classmethod
    def spec(cls, file: str = "encoder.onnx") -> EncoderSpec:
        return EncoderSpec(GraphSpec({"fp32": file}, tuple(cls.input_names), tuple(cls.output_names)),
                           waveform="waveform", waveform_lens="waveform_lens", lens="memory_lens",
                           ctc_logprobs="ctc_logprobs")


class StepGraphSpec:
    """The contract of a decoder step graph, built from its class's `state_tensors` and
    `memory_inputs`: tokens, the state and the memory inputs in (forward's argument order),
    log-probs and the new state out. Shared by every decoder's step graph."""

    @classmethod
    def spec(cls, cfg: ModelConfig, file: str = "decoder.onnx") -> DecoderSpec:
        state, memory = cls.state_tensors(cfg), cls.memory_inputs(cfg)
        inputs = ("tokens", *(s.name for s in state), *(m.name for m in memory))
        outputs = ("logprobs", *(s.output for s in state))
        return DecoderSpec(GraphSpec({"fp32": file}, inputs, outputs), state, memory, "tokens", "logprobs")


class DecoderStepGraph(StepGraphSpec, nn.Module):
    """One decoding step for N hypotheses of B utterances with explicit state:
    (tokens [N], h, c [N, H], context [N, D], attention [N, T], memory [B, T, D],
    memory_keys [B, T, A], memory_lens [B]) -> (logprobs [N, V], h, c, context, attention).
    The hypotheses come in N / B consecutive rows per utterance, which share its memory."""

    # parity cases (utterances, frames, hypotheses per utterance), unlike the export dummies'
    check_cases = [(1, 17, 1), (2, 93, 3), (2, 250, 1)]

    def __init__(self, model: Seq2SeqStudent) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.cfg = model.cfg
        spec = self.spec(model.cfg)
        # forward's argument order: tokens, the state (h, c, context, attention), the memory inputs
        self.input_names = list(spec.graph.inputs)
        self.output_names = list(spec.graph.outputs)

    @staticmethod
    def state_tensors(cfg: ModelConfig) -> tuple[StateTensor, ...]:
        """The LSTM decoder's state per hypothesis (models/decoder.py DecoderState)."""
        return (
            StateTensor("h", (BATCH, cfg.decoder_hidden), output="h_out"),
            StateTensor("c", (BATCH, cfg.decoder_hidden), output="c_out"),
            StateTensor("context", (BATCH, cfg.d_model), output="context_out"),  # last attention context
            # last attention weights (location awareness); start uniform over the valid frames
            StateTensor("attention", (BATCH, FRAMES), output="attention_out", init="uniform_frames"),
        )

    @staticmethod
    def memory_inputs(cfg: ModelConfig) -> tuple[MemoryInput, ...]:
        """Per-utterance encoder outputs the step reads, one row per utterance (not per hypothesis:
        copies per hypothesis made the step's attention read ten times the data at beam 10)."""
        return (
            MemoryInput("memory", (UTTERANCES, FRAMES, cfg.d_model), source="memory"),
            MemoryInput("memory_keys", (UTTERANCES, FRAMES, cfg.attention_dim), source="memory_keys"),
            MemoryInput("memory_lens", (UTTERANCES,), "int64", source="memory_lens"),
        )

    def forward(self, tokens, h, c, context, attention, memory, memory_keys, memory_lens):
        """models/decoder.py's step (the `reference`), arranged for onnxruntime on a CPU, where the
        attention's [N, T, A] element-wise passes are most of a step's time (72 % of the graph,
        profiled at 160 hypotheses x 135 frames): the query is added inside the location product
        (one batched MatMul of [location features, 1] by [W_location; query] per hypothesis), which
        saves one full [N, T, A] pass and the broadcast Add that was the graph's costliest node:
        58-59 -> 50-52 us per hypothesis at 160 x 135, 43-45 -> 38-39 at 20 x 135 (demo-en, 1 thread,
        best of 7 x 30 calls, two runs). Every parameter stays a graph initializer under its own
        name, so the torch student can still be read back from the model dir (models/onnx_weights.py);
        folding the embedding into the LSTM's input gates (a [V, 4H] table) saved another ~8 % but
        would lose the embedding and W_ih as such."""
        d = self.decoder
        mask = padding_mask(memory_lens, memory.shape[1])
        h, c = d.cell(torch.cat([d.embed(tokens), context], dim=-1), (h, c))
        b, t, n = memory.shape[0], memory.shape[1], h.shape[0]
        features = d.location_conv(attention.unsqueeze(1)).transpose(1, 2)  # [N, T, C]
        features = torch.cat([features, torch.ones_like(features[:, :, :1])], dim=-1)  # [N, T, C + 1]
        # [N, A, C + 1]; the weight is expanded before any transpose so that the graph keeps it as
        # the initializer decoder.location.weight (a transposed copy would be folded into an
        # anonymous constant, which the read-back cannot name)
        weights = torch.cat([d.location.weight.expand(n, -1, -1), d.query(h).unsqueeze(2)], dim=2)
        located = torch.bmm(features, weights.transpose(1, 2))  # [N, T, A]: location term + query
        e = d.energy(torch.tanh(memory_keys.unsqueeze(1) + located.reshape(b, -1, t, located.shape[-1])))
        att = torch.softmax(e.squeeze(-1).masked_fill(~mask.unsqueeze(1), -1e4), dim=-1)  # [B, K, T]
        context = torch.matmul(att, memory).reshape(n, -1)
        logits = d.output(torch.cat([h, context], dim=-1))
        return torch.log_softmax(logits, dim=-1), h, c, context, att.reshape(n, t)

    def reference(self, tokens, h, c, context, attention, memory, memory_keys, memory_lens):
        """The training step itself: what the parity check holds the exported graph to."""
        mask = padding_mask(memory_lens, memory.shape[1])
        logits, st = self.decoder.step(tokens, DecoderState(h, c, context, attention), memory, memory_keys, mask)
        return torch.log_softmax(logits, dim=-1), st.h, st.c, st.context, st.attention

    def dummy_inputs(self, batch: int = 2, frames: int = 40, beams: int = 2) -> tuple[torch.Tensor, ...]:
        """batch utterances, `beams` hypotheses each."""
        c, n = self.cfg, batch * beams
        lens = torch.tensor([frames] + [frames - 5] * (batch - 1), dtype=torch.int64)
        att = (padding_mask(lens, frames).float() / lens[:, None].float()).repeat_interleave(beams, 0)
        return (
            torch.randint(0, c.vocab_size, (n,)),
            torch.randn(n, c.decoder_hidden),
            torch.randn(n, c.decoder_hidden),
            torch.randn(n, c.d_model),
            att,
            torch.randn(batch, frames, c.d_model),
            torch.randn(batch, frames, c.attention_dim),
            lens,
        )

    def dynamic_axes(self) -> dict:
        spec = self.spec(self.cfg)
        axes = {"tokens": {0: "batch"}, "logprobs": {0: "batch"}, **dynamic_axes_of([*spec.state, *spec.memory])}
        return axes | {s.output: axes[s.name] for s in spec.state}
