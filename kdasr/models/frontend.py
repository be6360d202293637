"""Log-mel frontend that exports cleanly to ONNX.

The STFT is a strided conv1d with a fixed windowed DFT basis (complex `torch.stft` does not
export well, DESIGN.md §3); the mel matrix is a fixed buffer. Per-utterance mean/variance
normalisation makes the features independent of recording gain and helps unseen voices.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 20.0) -> np.ndarray:
    """HTK-style triangular mel filters, shape [n_fft // 2 + 1, n_mels]."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    n_bins = n_fft // 2 + 1
    bin_hz = np.linspace(0, sample_rate / 2, n_bins)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(sample_rate / 2), n_mels + 2))
    fb = np.zeros((n_bins, n_mels), dtype=np.float32)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (bin_hz - lo) / (mid - lo)
        falling = (hi - bin_hz) / (hi - mid)
        fb[:, m] = np.maximum(0.0, np.minimum(rising, falling))
    return fb


def num_frames(num_samples: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Frames produced from `num_samples` without centre padding (at least 0)."""
    return torch.clamp(torch.div(num_samples - n_fft, hop_length, rounding_mode="floor") + 1, min=0)


class LogMelFrontend(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        n_bins = n_fft // 2 + 1
        t = np.arange(n_fft)
        window = 0.5 - 0.5 * np.cos(2 * math.pi * t / n_fft)  # periodic Hann
        k = np.arange(n_bins)[:, None]
        angle = 2 * math.pi * k * t[None, :] / n_fft
        basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])  # [2*n_bins, n_fft]
        self.register_buffer("dft", torch.tensor(basis, dtype=torch.float32).unsqueeze(1), persistent=False)
        fb = mel_filterbank(sample_rate, n_fft, n_mels)
        self.register_buffer("mel", torch.tensor(fb), persistent=False)
        self.n_bins = n_bins

    def forward(self, wave: torch.Tensor, wave_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B, S] float32 at 16 kHz, wave_lens [B] -> features [B, T, n_mels], lengths [B]."""
        spec = nn.functional.conv1d(wave.unsqueeze(1), self.dft, stride=self.hop_length)  # [B, 2F, T]
        re, im = spec[:, : self.n_bins], spec[:, self.n_bins :]
        power = (re * re + im * im).transpose(1, 2)  # [B, T, F]
        feats = torch.log(torch.matmul(power, self.mel) + 1e-6)
        lens = num_frames(wave_lens, self.n_fft, self.hop_length)
        return normalize_features(feats, lens), lens


def normalize_features(feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation over the valid frames only."""
    mask = (torch.arange(feats.shape[1], device=feats.device)[None, :] < lens[:, None]).unsqueeze(-1)
    mask = mask.to(feats.dtype)
    count = torch.clamp(lens.to(feats.dtype), min=1.0)[:, None, None]
    mean = (feats * mask).sum(1, keepdim=True) / count
    var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / count
    return (feats - mean) / torch.sqrt(var + 1e-5) * mask
