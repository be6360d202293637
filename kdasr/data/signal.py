"""Signal primitives of the synthetic corpus (numpy only): coloured noise, mixing at an SNR, a
dependency-free room impulse response, FFT convolution. Shared by synthesize (training augmentation)
and conditions (the v2 rooms and channels), so neither imports the other."""

from __future__ import annotations

import numpy as np

SR = 16000


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/sqrt(f) amplitude) or brown (1/f amplitude) noise."""
    white = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(white)
        f = np.arange(spec.size, dtype=np.float64)
        f[0] = 1.0  # keep DC finite
        spec /= np.sqrt(f) if kind == "pink" else f
        white = np.fft.irfft(spec, n)
    rms = float(np.sqrt(np.mean(white**2)))
    return white / max(rms, 1e-12)


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + noise scaled so that 10 log10(P_x / P_noise) == snr_db over the whole utterance."""
    px = float(np.mean(x.astype(np.float64) ** 2))
    pn = float(np.mean(noise.astype(np.float64) ** 2))
    if px <= 0.0 or pn <= 0.0:
        return x
    scale = np.sqrt(px / (pn * 10 ** (snr_db / 10)))
    return (x + scale * noise[: x.size]).astype(np.float32)


def make_rir(rt60: float, drr_db: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Dependency-free room impulse response: direct path + exponentially decaying noise tail.

    exp(-6.9 t / RT60) is a 60 dB energy decay over RT60; the tail is scaled so the
    direct-to-reverberant energy ratio is drr_db. Normalised to unit energy.
    """
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.002 * sr)] = 0.0  # first reflections arrive a few ms after the direct sound
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail**2)), 1e-12))
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution via FFT (numpy only), cut to len(x)."""
    n = x.size + h.size - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return y[: x.size].astype(np.float32)
