"""Conditions real audio has, for corpus v2: coloured noise from sox, simulated rooms
(pyroomacoustics), telephone band with mu-law/A-law, lossy codecs (MP3, Ogg Vorbis, Opus round
trips through libsndfile), and gain from very quiet to clipped.

`plan_conditions` draws what happens to one utterance from its own rng (deterministic from the
corpus seed and the utterance id); `apply_conditions` renders it. The v1 corpus keeps using
synthesize.plan_augment, so it is reproduced bit for bit.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kdasr.data.signal import convolve, make_noise, mix_at_snr
from kdasr.errors import KdasrError

SR = 16000
NOISE_BANK_SECONDS = 60
# sox `synth` noise types and effects: coloured noises a numpy white/pink/brown generator lacks
# (band-limited hiss, rumble, hum with harmonics).
SOX_NOISES: dict[str, list[str]] = {
    "sox-pink": ["synth", str(NOISE_BANK_SECONDS), "pinknoise"],
    "sox-brown": ["synth", str(NOISE_BANK_SECONDS), "brownnoise"],
    "sox-hiss": ["synth", str(NOISE_BANK_SECONDS), "whitenoise", "highpass", "3000"],
    "sox-rumble": ["synth", str(NOISE_BANK_SECONDS), "brownnoise", "lowpass", "300"],
    "sox-band": ["synth", str(NOISE_BANK_SECONDS), "pinknoise", "band", "1200", "800"],
    "sox-hum": ["synth", str(NOISE_BANK_SECONDS), "sine", "60", "sine", "120", "sine", "180", "remix", "-"],
}
CHANNELS = ("tel-ulaw", "tel-alaw", "mp3", "ogg", "opus")


@dataclass(frozen=True)
class Conditions:
    """What happens to one v2 utterance after synthesis; None fields are not applied."""

    noise: str | None = None
    snr_db: float | None = None
    room: tuple[float, ...] | None = None  # (rt60, room x, y, z, src x, y, z, mic x, y, z)
    channel: str | None = None
    quality: float | None = None  # codec compression level 0..1
    peak: float = 0.9
    clip_gain: float | None = None  # >1: amplify then hard-clip

    def label(self) -> str:
        parts = []
        if self.noise is not None:
            parts.append(f"noise:{self.noise}:{self.snr_db:.1f}dB")
        if self.room is not None:
            parts.append(f"room:{self.room[0]:.2f}s")
        if self.channel is not None:
            parts.append(self.channel if self.quality is None else f"{self.channel}:q{self.quality:.2f}")
        if self.clip_gain is not None:
            parts.append(f"clip:x{self.clip_gain:.1f}")
        elif self.peak < 0.05:
            parts.append(f"quiet:{self.peak:.3f}")
        return "+".join(parts)


def _draw_room(rng: np.random.Generator) -> tuple[float, ...]:
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 3.5])
    rt60 = float(rng.uniform(0.2, 0.9))
    src = rng.uniform(0.5, dims - 0.5)
    mic = rng.uniform(0.5, dims - 0.5)
    return tuple(round(float(v), 3) for v in (rt60, *dims, *src, *mic))


def plan_conditions(rng: np.random.Generator, kind: str) -> Conditions:
    """kind: 'train' (each condition with its own probability), 'clean' (level only) or
    'noisy' (test_noisy: always noise at 0-15 dB SNR, a room half the time)."""
    peak = round(float(rng.uniform(0.3, 0.95)), 3)
    if kind == "clean":
        return Conditions(peak=peak)
    kinds = ("white", "pink", "brown", *SOX_NOISES)
    if kind == "noisy":
        noise = kinds[int(rng.integers(len(kinds)))]
        snr = round(float(rng.uniform(0.0, 15.0)), 1)
        room = _draw_room(rng) if rng.random() < 0.5 else None
        return Conditions(noise, snr, room, peak=peak)
    if kind != "train":
        raise ValueError(kind)
    noise = snr = None
    if rng.random() < 0.35:
        noise, snr = kinds[int(rng.integers(len(kinds)))], round(float(rng.uniform(0.0, 20.0)), 1)
    room = _draw_room(rng) if rng.random() < 0.25 else None
    channel = quality = None
    if rng.random() < 0.2:
        channel = CHANNELS[int(rng.integers(len(CHANNELS)))]
        quality = None if channel.startswith("tel") else round(float(rng.uniform(0.2, 0.9)), 2)
    clip_gain = None
    u = rng.random()
    if u < 0.05:
        peak = round(float(rng.uniform(0.003, 0.03)), 4)  # very quiet recording
    elif u < 0.10:
        clip_gain = round(float(rng.uniform(1.5, 5.0)), 2)
    return Conditions(noise, snr, room, channel, quality, peak, clip_gain)


@functools.cache
def noise_bank(kind: str, cache_dir: str) -> np.ndarray:
    """NOISE_BANK_SECONDS of one sox noise at 16 kHz, rendered once into cache_dir (FLAC)."""
    path = Path(cache_dir) / f"{kind}.flac"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # a temp name of this process's own: a synth pool's workers may render the same noise at once
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.flac")
        # -R: sox seeds its noise generators from the clock unless asked to repeat; without it every build
        # of a corpus had other noise (a rebuilt corpus v2's test_noisy scored 5,866 word errors against 5,845)
        cmd = ["sox", "-R", "-n", "-r", str(SR), "-c", "1", "-b", "16", str(tmp), *SOX_NOISES[kind],
               "gain", "-n", "-3"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        except FileNotFoundError:
            raise KdasrError("'sox' not found; install it with: sudo apt-get install -y sox") from None
        except subprocess.CalledProcessError as e:
            raise KdasrError(f"sox noise {kind} failed: {e.stderr.decode(errors='replace')[:200]}") from None
        tmp.replace(path)
    x, _ = sf.read(path, dtype="float32")
    return x


def _noise(kind: str, n: int, rng: np.random.Generator, cache_dir: Path) -> np.ndarray:

    if kind in ("white", "pink", "brown"):
        return make_noise(kind, n, rng)
    bank = noise_bank(kind, str(cache_dir))
    reps = int(np.ceil((n + bank.size) / bank.size))
    start = int(rng.integers(bank.size))
    return np.tile(bank, reps)[start: start + n].astype(np.float64)


def room_impulse(room: tuple[float, ...]) -> np.ndarray:
    """Shoebox RIR by the image method (pyroomacoustics), unit energy."""
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise KdasrError("simulated rooms need pyroomacoustics; install with: pip install 'kdasr[data]'") from None
    rt60, dims, src, mic = room[0], np.array(room[1:4]), np.array(room[4:7]), np.array(room[7:10])
    e_abs, order = pra.inverse_sabine(rt60, dims)
    r = pra.ShoeBox(dims, fs=SR, materials=pra.Material(e_abs), max_order=min(order, 12))
    r.add_source(src)
    r.add_microphone(mic)
    r.compute_rir()
    h = np.asarray(r.rir[0][0], np.float64)
    return h / max(float(np.sqrt(np.sum(h**2))), 1e-12)


def through_channel(x: np.ndarray, channel: str, quality: float | None) -> np.ndarray:
    """Round trip through a telephone band (8 kHz, 300-3400 Hz, mu/A-law) or a lossy codec."""
    buf = io.BytesIO()
    if channel.startswith("tel"):
        y = soxr.resample(x, SR, 8000)
        spec = np.fft.rfft(y)
        f = np.fft.rfftfreq(y.size, 1 / 8000)
        spec[(f < 300) | (f > 3400)] = 0
        y = np.clip(np.fft.irfft(spec, y.size), -1, 1)
        sf.write(buf, y, 8000, format="WAV", subtype="ULAW" if channel == "tel-ulaw" else "ALAW")
        buf.seek(0)
        z, _ = sf.read(buf, dtype="float32")
        return soxr.resample(z, 8000, SR).astype(np.float32)
    fmt, sub = {"mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}[channel]
    # Opus in libsndfile runs at 48 kHz internally; 16 kHz is accepted and resampled by it.
    sf.write(buf, np.clip(x, -1, 1), SR, format=fmt, subtype=sub,
             compression_level=1.0 - (quality if quality is not None else 0.5))
    buf.seek(0)
    z, sr = sf.read(buf, dtype="float32")
    z = soxr.resample(z, sr, SR) if sr != SR else z
    return np.pad(z, (0, max(0, x.size - z.size)))[: x.size].astype(np.float32)


def apply_conditions(x: np.ndarray, c: Conditions, rng: np.random.Generator, noise_dir: Path) -> np.ndarray:

    if c.room is not None:
        x = convolve(x, room_impulse(c.room).astype(np.float32))
    if c.noise is not None:
        x = mix_at_snr(x, _noise(c.noise, x.size, rng, noise_dir), c.snr_db or 0.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = (x * (c.peak / peak)).astype(np.float32)
    if c.clip_gain is not None:
        x = np.clip(x * c.clip_gain, -1.0, 1.0).astype(np.float32)
    if c.channel is not None:
        x = through_channel(x, c.channel, c.quality)
    return x
