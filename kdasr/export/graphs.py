"""Which export wrappers a student uses: one (encoder graph, decoder-step graph) pair per
decoder kind, so export, the parity check and the model spec all pick them the same way."""

from __future__ import annotations

from torch import nn

from ..models.config import ModelConfig
from ..models.student import Seq2SeqStudent
from ..spec.graph_spec import DecoderSpec, EncoderSpec
from .transformer_wrappers import TransformerDecoderStepGraph, TransformerEncoderGraph
from .wrappers import DecoderStepGraph, EncoderGraph

# decoder_type -> (encoder graph, decoder step graph, the decoder's name in model.json's architecture)
GRAPHS = {
    "lstm": (EncoderGraph, DecoderStepGraph, "lstm-location-attention"),
    "transformer": (TransformerEncoderGraph, TransformerDecoderStepGraph, "transformer"),
}


def _entry(cfg: ModelConfig) -> tuple:
    if cfg.decoder_type not in GRAPHS:
        raise ValueError(f"no export graphs for decoder_type {cfg.decoder_type!r} (known: {', '.join(GRAPHS)})")
    return GRAPHS[cfg.decoder_type]


def student_graphs(model: Seq2SeqStudent) -> tuple[nn.Module, nn.Module]:
    encoder, decoder, _ = _entry(model.cfg)
    return encoder(model).eval(), decoder(model).eval()


def graph_specs(cfg: ModelConfig) -> tuple[EncoderSpec, DecoderSpec]:
    encoder, decoder, _ = _entry(cfg)
    return (encoder.spec(cfg) if encoder is not EncoderGraph else encoder.spec()), decoder.spec(cfg)


def decoder_kind(cfg: ModelConfig) -> str:
    return _entry(cfg)[2]
