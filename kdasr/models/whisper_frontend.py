"""Whisper's log-mel front end in plain torch ops, so that it exports inside the encoder graph.

What openai/whisper's `log_mel_spectrogram` computes (and transformers' WhisperFeatureExtractor,
faster-whisper's FeatureExtractor): a centred STFT (n_fft 400, hop 160, periodic Hann, reflect
padding), power, 80 Slaney mel filters, log10 clamped at 1e-10, values floored at the
utterance's maximum minus 8, then (x + 4) / 4. As in kdasr's own front end (frontend.py) the STFT
is a strided conv1d with a fixed windowed DFT basis, because complex `torch.stft` does not export.

Lengths: whisper pads the audio with 30 s of zeros, computes the spectrogram and keeps
`samples // 160` frames. Here the audio is not padded to 30 s: a batch row's samples past its
length are zeroed and 200 zeros follow the longest row, which gives every row exactly the frames
whisper gives it (its last frames see zeros after the audio, as whisper's do), so the features do
not depend on what an utterance is batched with. The dynamic-range floor (maximum - 8) takes the
maximum over the kept frames; whisper's also sees the frame or two past the end, which differs
only when one of those holds the utterance's loudest bin.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SAMPLE_RATE, N_FFT, HOP, N_MELS = 16000, 400, 160, 80


def slaney_mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (Slaney scale and area
    normalisation), as whisper's mel_filters.npz holds it; shape [n_fft // 2 + 1, n_mels]."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def hz_to_mel(f: float) -> float:
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    mels = np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2)
    freqs = np.where(mels < min_log_mel, f_sp * mels, min_log_hz * np.exp(logstep * (mels - min_log_mel)))
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ramps = freqs[:, None] - fft_freqs[None, :]
    fdiff = np.diff(freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (freqs[2:] - freqs[:-2]))[:, None]
    return weights.T.astype(np.float32)


class WhisperFrontend(nn.Module):
    """waveform [B, S] at 16 kHz + lengths [B] -> whisper log-mel [B, S // 160, 80] (zero past
    each row's frames) + frame lengths [B]."""

    def __init__(self) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.n_bins = N_FFT, HOP, N_FFT // 2 + 1
        t = np.arange(N_FFT)
        window = 0.5 - 0.5 * np.cos(2 * math.pi * t / N_FFT)  # periodic Hann, torch.hann_window's default
        angle = 2 * math.pi * np.arange(self.n_bins)[:, None] * t[None, :] / N_FFT
        basis = np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])  # [2 * bins, n_fft]
        self.register_buffer("dft", torch.tensor(basis, dtype=torch.float32).unsqueeze(1), persistent=False)
        self.register_buffer("mel", torch.from_numpy(slaney_mel_filters()), persistent=False)
        self.cache_tag = "whisper-logmel-v1"  # names these features in feature caches

    def forward(self, wave: torch.Tensor, wave_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = wave.shape[1]
        samples = torch.arange(s, device=wave.device)[None, :] < wave_lens[:, None]
        wave = wave * samples.to(wave.dtype)
        half = self.n_fft // 2
        # centre padding: reflect on the left (every row starts at sample 0), zeros on the right
        padded = torch.cat([wave[:, 1 : half + 1].flip(1), wave, torch.zeros_like(wave[:, :half])], dim=1)
        spec = nn.functional.conv1d(padded.unsqueeze(1), self.dft, stride=self.hop_length)  # [B, 2F, S//hop + 1]
        frames = s // self.hop_length
        re, im = spec[:, : self.n_bins, :frames], spec[:, self.n_bins :, :frames]
        power = (re * re + im * im).transpose(1, 2)  # [B, T, F]
        logmel = torch.log10(torch.clamp(torch.matmul(power, self.mel), min=1e-10))
        lens = torch.div(wave_lens, self.hop_length, rounding_mode="floor")
        valid = (torch.arange(frames, device=wave.device)[None, :] < lens[:, None]).unsqueeze(-1)
        peak = logmel.masked_fill(~valid, -1e4).amax(dim=(1, 2), keepdim=True)
        logmel = (torch.maximum(logmel, peak - 8.0) + 4.0) / 4.0
        return logmel * valid.to(logmel.dtype), lens
