"""A whole whisper model (CTranslate2 weights, whisper_weights.py) as kdasr's two graphs.

Encoder graph: waveform -> whisper's log-mel (whisper_frontend.py) -> [zero log-mel frames to 30 s
as faster-whisper pads, or a short zero tail] -> whisper's encoder (whisper_encoder.py, any
length) -> every decoder layer's cross-attention keys
and values, computed once per utterance: cross_k_i, cross_v_i [B, H, T, dh] + memory_lens.
Decoder step graph: (tokens [N], self_k_i/self_v_i [N, H, t, dh], cross_*, memory_lens) ->
(log-probs [N, V], caches one step longer). Whisper's decoder: token embedding + learned position
t (the cache length), pre-norm layers (self-attention over the cache, cross-attention over the
utterance's frames, GELU MLP), final norm, logits from the tied embedding. Whisper's suppressed
tokens are a constant -inf bias on the logits, and its begin-suppression (blank, <|endoftext|>)
applies at the first generated position, as faster-whisper's suppress_blank does.
The hypothesis rows come in N / B consecutive blocks per utterance (the format 3 layout kdasr's
Transformer decoder uses), which share the utterance's cross keys/values.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..models.config import ModelConfig
from ..models.encoder import padding_mask
from ..models.whisper_encoder import WHISPER_DIMS, WhisperEncoder
from ..models.whisper_frontend import WhisperFrontend
from ..models.whisper_weights import CT2Checkpoint
from ..spec.graph_spec import (
    BATCH,
    FRAMES,
    STEPS,
    UTTERANCES,
    DecoderSpec,
    EncoderSpec,
    GraphSpec,
    MemoryInput,
    StateTensor,
)

NEG = -1e9  # a suppressed token's logit bias (finite: -inf * 0 would make NaN in the begin mask)


def _t(ckpt: CT2Checkpoint, name: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(ckpt.get(name), dtype=np.float32).copy())


def _linear(ckpt: CT2Checkpoint, prefix: str, rows: slice | None = None, bias: bool = True) -> nn.Linear:
    w = _t(ckpt, f"{prefix}/weight")
    w = w[rows] if rows is not None else w
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    lin.weight.data.copy_(w)
    if bias:
        b = _t(ckpt, f"{prefix}/bias")
        lin.bias.data.copy_(b[rows] if rows is not None else b)
    return lin


def _norm(ckpt: CT2Checkpoint, prefix: str) -> nn.LayerNorm:
    g = _t(ckpt, f"{prefix}/gamma")
    ln = nn.LayerNorm(g.shape[0])
    ln.weight.data.copy_(g)
    ln.bias.data.copy_(_t(ckpt, f"{prefix}/beta"))
    return ln


def _count_layers(ckpt: CT2Checkpoint, side: str) -> int:
    return len({k.split("/")[1] for k in ckpt.variables if re.match(rf"{side}/layer_\d+/", k)})


def model_name_of(ckpt: CT2Checkpoint) -> str:
    """The kdasr encoder type whose dims the checkpoint has (whisper-tiny.en or whisper-base)."""
    width = ckpt.get("encoder/position_encodings/encodings").shape[1]
    layers = _count_layers(ckpt, "encoder")
    heads = int(ckpt.get("encoder/num_heads"))
    for name, dims in WHISPER_DIMS.items():
        if (dims.width, dims.layers, dims.heads) == (width, layers, heads):
            return name
    raise ModelError(f"a whisper of width {width}, {layers} layers, {heads} heads: only the sizes of "
                     f"{', '.join(WHISPER_DIMS)} are supported")


def decoder_dims(ckpt: CT2Checkpoint) -> tuple[int, int, int]:
    """(layers, heads, width) of the decoder."""
    layers = _count_layers(ckpt, "decoder")
    return layers, int(ckpt.get("decoder/num_heads")), ckpt.get("decoder/embeddings/weight").shape[1]


def cache_names(layers: int) -> list[str]:
    return [f"self_{kv}_{i}" for i in range(layers) for kv in "kv"]


def cross_names(layers: int) -> list[str]:
    return [f"cross_{kv}_{i}" for i in range(layers) for kv in "kv"]


def graph_specs(ckpt: CT2Checkpoint) -> tuple[EncoderSpec, DecoderSpec]:
    layers, heads, width = decoder_dims(ckpt)
    dh = width // heads
    enc = EncoderSpec(GraphSpec({"fp32": "encoder.onnx"}, ("waveform", "waveform_lens"),
                                ("memory_lens", *cross_names(layers))), ctc_logprobs="")
    state = tuple(StateTensor(n, (BATCH, heads, STEPS, dh), output=f"{n}_out") for n in cache_names(layers))
    memory = (*(MemoryInput(n, (UTTERANCES, heads, FRAMES, dh), source=n) for n in cross_names(layers)),
              MemoryInput("memory_lens", (UTTERANCES,), "int64", source="memory_lens"))
    inputs = ("tokens", *(s.name for s in state), *(m.name for m in memory))
    outputs = ("logprobs", *(s.output for s in state))
    return enc, DecoderSpec(GraphSpec({"fp32": "decoder.onnx"}, inputs, outputs), state, memory)


class WhisperEncoderGraph(nn.Module):
    """waveform [B, S], waveform_lens [B] -> memory_lens [B], cross_k_0, cross_v_0, ... [B, H, T, dh]."""

    def __init__(self, ckpt: CT2Checkpoint, pad_features: bool = False, tail_frames: int = 0) -> None:
        super().__init__()
        # pad_features: the log-mel is padded with zeros to 30 s (3000 frames) before the encoder,
        # which then attends to all of them: faster-whisper's padding (its pad_or_trim on features).
        # tail_frames: only this many zero frames follow each row's own (the frontend zeroes a row's
        # frames past its length, so zeros appended to the batch give every row its tail).
        self.pad_features, self.tail_frames = pad_features, tail_frames
        name = model_name_of(ckpt)
        dims = WHISPER_DIMS[name]
        self.frontend = WhisperFrontend()
        self.encoder = WhisperEncoder(ModelConfig(vocab_size=8, encoder_type=name, d_model=dims.width))
        self.encoder.load_checkpoint(ckpt)
        layers, self.heads, width = decoder_dims(ckpt)
        # CT2 fuses the cross-attention key and value: linear_1 = [k; v], the key without a bias
        self.keys = nn.ModuleList(_linear(ckpt, f"decoder/layer_{i}/attention/linear_1", slice(0, width), bias=False)
                                  for i in range(layers))
        self.values = nn.ModuleList(_linear(ckpt, f"decoder/layer_{i}/attention/linear_1", slice(width, 2 * width))
                                    for i in range(layers))
        self.input_names = ["waveform", "waveform_lens"]
        self.output_names = ["memory_lens", *cross_names(layers)]

    def forward(self, wave: torch.Tensor, wave_lens: torch.Tensor):
        feats, lens = self.frontend(wave, wave_lens)
        if self.pad_features:  # inputs are at most 30 s (max_input_seconds): exactly 3000 frames
            feats = torch.cat([feats, torch.zeros(feats.shape[0], 3000, feats.shape[2])], dim=1)[:, :3000]
            lens = torch.full_like(lens, 3000)
        elif self.tail_frames:
            feats = torch.cat([feats, torch.zeros(feats.shape[0], self.tail_frames, feats.shape[2])], dim=1)
            lens = lens + self.tail_frames
        x, lens = self.encoder(feats, lens)
        b, t, d = x.shape
        split = lambda y: y.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        out = []
        for k, v in zip(self.keys, self.values):
            out += [split(k(x)), split(v(x))]
        return (lens, *out)

    def dummy_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        return torch.randn(2, 32000, generator=gen) * 0.1, torch.tensor([32000, 24000])

    def dynamic_axes(self) -> dict:
        axes = {"waveform": {0: "batch", 1: "samples"}, "waveform_lens": {0: "batch"}, "memory_lens": {0: "batch"}}
        return axes | {n: {0: "batch", 2: "frames"} for n in self.output_names[1:]}


class _DecoderLayer(nn.Module):
    def __init__(self, ckpt: CT2Checkpoint, i: int, heads: int) -> None:
        super().__init__()
        p = f"decoder/layer_{i}"
        self.heads = heads
        self.self_norm = _norm(ckpt, f"{p}/self_attention/layer_norm")
        self.qkv = _linear(ckpt, f"{p}/self_attention/linear_0")  # fused q, k, v (k's bias stored as 0)
        self.self_out = _linear(ckpt, f"{p}/self_attention/linear_1")
        self.cross_norm = _norm(ckpt, f"{p}/attention/layer_norm")
        self.cross_q = _linear(ckpt, f"{p}/attention/linear_0")
        self.cross_out = _linear(ckpt, f"{p}/attention/linear_2")
        self.ffn_norm = _norm(ckpt, f"{p}/ffn/layer_norm")
        self.fc1 = _linear(ckpt, f"{p}/ffn/linear_0")
        self.fc2 = _linear(ckpt, f"{p}/ffn/linear_1")

    def forward(self, x, k_cache, v_cache, cross_k, cross_v, cross_bias):
        n, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = self.qkv(self.self_norm(x)).reshape(n, 3, h, 1, dh).unbind(1)  # [N, H, 1, dh] each
        k_all, v_all = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
        att = torch.softmax(torch.matmul(q * (1.0 / math.sqrt(dh)), k_all.transpose(-1, -2)), dim=-1)
        x = x + self.self_out(torch.matmul(att, v_all).reshape(n, d))
        # cross-attention: the N rows are B utterances x K hypotheses, consecutive
        b = cross_k.shape[0]
        q = self.cross_q(self.cross_norm(x)).reshape(b, -1, h, dh).transpose(1, 2)  # [B, H, K, dh]
        scores = torch.matmul(q * (1.0 / math.sqrt(dh)), cross_k.transpose(-1, -2)) + cross_bias
        att = torch.matmul(torch.softmax(scores, dim=-1), cross_v)  # [B, H, K, dh]
        x = x + self.cross_out(att.transpose(1, 2).reshape(n, d))
        x = x + self.fc2(nn.functional.gelu(self.fc1(self.ffn_norm(x))))
        return x, k_all, v_all


class WhisperDecoderStepGraph(nn.Module):
    """(tokens [N], self caches, cross keys/values, memory_lens) -> (logprobs [N, V], caches + 1 step)."""

    def __init__(self, ckpt: CT2Checkpoint, suppress: list[int], begin_suppress: list[int], begin_at: int) -> None:
        super().__init__()
        layers, self.heads, width = decoder_dims(ckpt)
        # stored transposed, [D, V], for both uses (lookup and tied output): one copy in the graph
        # (an embedding and its transpose were two initializers after constant folding)
        self.register_buffer("embed_t", _t(ckpt, "decoder/embeddings/weight").t().contiguous())
        self.register_buffer("positions", _t(ckpt, "decoder/position_encodings/encodings"))
        self.layers = nn.ModuleList(_DecoderLayer(ckpt, i, self.heads) for i in range(layers))
        self.norm = _norm(ckpt, "decoder/layer_norm")
        vocab = self.embed_t.shape[1]
        bias, begin = torch.zeros(vocab), torch.zeros(vocab)
        bias[suppress], begin[begin_suppress] = NEG, NEG
        self.register_buffer("suppress", bias)
        self.register_buffer("begin_suppress", begin)
        self.begin_at = begin_at  # the cache length at the first generated token (the prompt's length)
        self.n_cache = 2 * layers
        spec = graph_specs(ckpt)[1]
        self.input_names, self.output_names = list(spec.graph.inputs), list(spec.graph.outputs)

    def forward(self, tokens: torch.Tensor, *rest: torch.Tensor):
        cache, cross, memory_lens = rest[: self.n_cache], rest[self.n_cache : -1], rest[-1]
        t = torch._shape_as_tensor(cache[0])[2]  # past steps, as a tensor so the trace keeps it symbolic
        x = self.embed_t.index_select(1, tokens).t() + self.positions.index_select(0, t.reshape(1))
        cross_bias = torch.zeros(memory_lens.shape[0], 1, 1, cross[0].shape[2], dtype=x.dtype).masked_fill(
            ~padding_mask(memory_lens, cross[0].shape[2])[:, None, None, :], NEG)
        out = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cache[2 * i], cache[2 * i + 1], cross[2 * i], cross[2 * i + 1], cross_bias)
            out += [k, v]
        logits = torch.matmul(self.norm(x), self.embed_t) + self.suppress
        first = (t == self.begin_at).to(logits.dtype)
        logits = logits + first * self.begin_suppress
        return (torch.log_softmax(logits, dim=-1), *out)

    def dummy_inputs(self, utts: int = 2, frames: int = 30, past: int = 3, beams: int = 2):
        h, dh, n = self.heads, self.embed_t.shape[0] // self.heads, utts * beams
        gen = torch.Generator().manual_seed(0)
        cache = [torch.randn(n, h, past, dh, generator=gen) for _ in range(self.n_cache)]
        cross = [torch.randn(utts, h, frames, dh, generator=gen) for _ in range(self.n_cache)]
        lens = torch.tensor([frames] + [frames - 4] * (utts - 1))
        return (torch.randint(0, 50000, (n,), generator=gen), *cache, *cross, lens)

    def dynamic_axes(self) -> dict:
        axes = {"tokens": {0: "batch"}, "logprobs": {0: "batch"}, "memory_lens": {0: "utterances"}}
        for name in self.input_names[1 : 1 + self.n_cache]:
            axes[name] = {0: "batch", 2: "steps"}
            axes[f"{name}_out"] = {0: "batch", 2: "steps_plus_one"}
        for name in self.input_names[1 + self.n_cache : -1]:
            axes[name] = {0: "utterances", 2: "frames"}
        return axes
