"""Render sentences to 16 kHz mono 16-bit FLAC with a TTS voice, plus training augmentation.

Pipeline per utterance: engine -> soxr resample to 16 kHz -> trim silence beyond 0.15 s
-> [train only: speed/vocal-tract perturbation, simulated room, additive noise]
-> peak-normalise to a random level -> atomic FLAC write (temp + rename, so a killed
run never leaves a truncated file that a rerun would skip).

Every random choice comes from an rng seeded by (seed, utterance id), so the audio does
not depend on job count or order.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from kdasr.data.conditions import Conditions, apply_conditions
from kdasr.data.signal import SR, convolve, make_noise, make_rir, mix_at_snr
from kdasr.data.voices import Voice
from kdasr.errors import KdasrError

KEEP_SILENCE_S = 0.15
NOISE_KINDS = ("white", "pink", "brown")


def utt_rng(seed: int, utt_id: str, stream: int = 0) -> np.random.Generator:
    """Independent generator per (seed, utterance, stream); stable across processes."""
    h = int(hashlib.sha1(utt_id.encode("utf-8")).hexdigest()[:16], 16)
    return np.random.default_rng([seed, h, stream])


@dataclass(frozen=True)
class Augment:
    """What was done to one utterance beyond synthesis; all-None means clean."""

    speed: float | None = None
    room_rt60: float | None = None
    room_drr_db: float | None = None
    noise: str | None = None
    snr_db: float | None = None
    peak: float = 0.9

    def label(self) -> str:
        """Manifest form, e.g. 'noise:pink:12.3dB+room:0.45s+speed:1.05' ('' when clean)."""
        parts = []
        if self.noise is not None:
            parts.append(f"noise:{self.noise}:{self.snr_db:.1f}dB")
        if self.room_rt60 is not None:
            parts.append(f"room:{self.room_rt60:.2f}s")
        if self.speed is not None:
            parts.append(f"speed:{self.speed:.2f}")
        return "+".join(parts)


def plan_augment(rng: np.random.Generator, *, train: bool) -> Augment:
    """Draw the augmentation of one utterance: ~50% speed, ~20% room, ~30% noise (train only)."""
    peak = round(float(rng.uniform(0.3, 0.95)), 3)
    if not train:
        return Augment(peak=peak)
    speed = round(float(rng.uniform(0.9, 1.1)), 2) if rng.random() < 0.5 else None
    rt60 = drr = None
    if rng.random() < 0.2:
        rt60, drr = round(float(rng.uniform(0.2, 0.8)), 2), round(float(rng.uniform(0.0, 8.0)), 1)
    noise = snr = None
    if rng.random() < 0.3:
        noise, snr = NOISE_KINDS[int(rng.integers(3))], round(float(rng.uniform(0.0, 20.0)), 1)
    return Augment(speed, rt60, drr, noise, snr, peak)


# ---------------------------------------------------------------- signal processing

def trim_silence(x: np.ndarray, sr: int = SR, keep_s: float = KEEP_SILENCE_S, rel_db: float = -40.0) -> np.ndarray:
    """Leading/trailing silence (below rel_db of the peak) set to exactly keep_s seconds.

    Engines differ (espeak-ng starts at once, flite pads); equal margins keep the
    amount of silence from being a cue for the voice.
    """
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 0.0:
        return x[:0]
    loud = np.flatnonzero(np.abs(x) > peak * 10 ** (rel_db / 20))
    keep = int(keep_s * sr)
    first, last = int(loud[0]), int(loud[-1])
    pad = (max(0, keep - first), max(0, last + 1 + keep - x.size))
    return np.pad(x[max(0, first - keep): last + 1 + keep], pad).astype(np.float32)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """Play faster/slower by resampling: changes tempo, pitch and formants together."""
    return soxr.resample(x, SR * factor, SR).astype(np.float32)


def apply_augment(x: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    if aug.speed is not None:
        x = speed_perturb(x, aug.speed)
    if aug.room_rt60 is not None:
        x = convolve(x, make_rir(aug.room_rt60, aug.room_drr_db or 0.0, rng))
    if aug.noise is not None:
        x = mix_at_snr(x, make_noise(aug.noise, x.size, rng), aug.snr_db or 0.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (aug.peak / peak)).astype(np.float32) if peak > 0 else x


# ---------------------------------------------------------------- engines

def _run(cmd: list[str], what: str) -> bytes:
    try:
        res = subprocess.run(cmd, check=False, capture_output=True, timeout=300)
    except FileNotFoundError:
        raise KdasrError(f"'{cmd[0]}' not found; install it with: sudo apt-get install -y {cmd[0]}") from None
    if res.returncode != 0:
        raise KdasrError(f"{what} failed (exit {res.returncode}): {res.stderr.decode(errors='replace')[:200]}")
    return res.stdout


def _to_16k(x: np.ndarray, sr: int) -> np.ndarray:
    if x.ndim > 1:
        x = x.mean(axis=1)
    return (soxr.resample(x, sr, SR) if sr != SR else x).astype(np.float32)


def synth_espeak(text: str, voice: Voice) -> np.ndarray:
    p = voice.params
    wav = _run(["espeak-ng", "-v", voice.name, "-s", str(int(p.get("s", 175))), "-p", str(int(p.get("p", 50))),
                "--stdout", text], f"espeak-ng {voice.describe()}")
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return _to_16k(x, sr)


def synth_flite(text: str, voice: Voice, tmp: Path) -> np.ndarray:
    out = tmp / "flite.wav"
    cmd = ["flite", "-voice", voice.name]
    for k, v in sorted(voice.params.items()):
        cmd += ["--setf", f"{k}={v:g}"]
    _run(cmd + ["-t", text, "-o", str(out)], f"flite {voice.describe()}")
    x, sr = sf.read(out, dtype="float32")
    return _to_16k(x, sr)


def synth_festival(items: list[tuple[str, Voice]], tmp: Path) -> list[np.ndarray]:
    """Many sentences in one `festival -b` run (start-up costs ~0.2 s per process)."""
    lines: list[str] = []
    for i, (text, voice) in enumerate(items):
        lines.append(f"(voice_{voice.name})")
        stretch = voice.params.get("Duration_Stretch", 1.0)
        lines.append(f"(Parameter.set 'Duration_Stretch {stretch:g})")
        safe = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(utt.save.wave (SynthText "{safe}") "{tmp / f"fest{i}.wav"}" \'riff)')
    script = tmp / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _run(["festival", "-b", str(script)], "festival batch")
    out = []
    for i in range(len(items)):
        path = tmp / f"fest{i}.wav"
        if not path.exists():
            raise KdasrError(f"festival produced no audio for: {items[i][0]!r} ({items[i][1].describe()})")
        x, sr = sf.read(path, dtype="float32")
        out.append(_to_16k(x, sr))
    return out


def synth_neural(text: str, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """hibari or Kokoro (kdasr.data.neural_tts) at 24 kHz, resampled to 16 kHz."""
    from kdasr.data import neural_tts

    p = voice.params
    british = bool(p.get("british", 0.0))
    if voice.engine == "hibari":
        x = neural_tts.synth_hibari(text, speed=p.get("speed", 1.0), f0_scale=p.get("f0", 1.0), british=british,
                                    seed=int(rng.integers(2**31)))
    else:
        x = neural_tts.synth_kokoro(text, blend=voice.name, speed=p.get("speed", 1.0), british=british)
    return _to_16k(x, neural_tts.NEURAL_SR)


def warp_formants(x: np.ndarray, cents: float) -> np.ndarray:
    """Shift formants and pitch together by `cents`, keeping the tempo (sox `pitch`): a change of
    vocal-tract length (and F0) that the engines' own knobs do not give."""
    cmd = ["sox", "-t", "f32", "-r", str(SR), "-c", "1", "-", "-t", "f32", "-", "pitch", f"{cents:g}"]
    try:
        res = subprocess.run(cmd, input=np.ascontiguousarray(x, np.float32).tobytes(), capture_output=True,
                             check=False, timeout=120)
    except FileNotFoundError:
        raise KdasrError("'sox' not found; install it with: sudo apt-get install -y sox") from None
    if res.returncode != 0:
        raise KdasrError(f"sox pitch {cents:g} failed: {res.stderr.decode(errors='replace')[:200]}")
    return np.frombuffer(res.stdout, np.float32).copy()


# ---------------------------------------------------------------- jobs

@dataclass(frozen=True)
class RenderJob:
    """One utterance to render: text, voice, augmentation plan and its output file."""

    id: str
    text: str
    voice: Voice
    out_path: Path
    augment: Augment | Conditions = field(default_factory=Augment)
    seed: int = 0
    noise_dir: Path | None = None  # corpus v2: where the sox noise bank is cached


def write_flac_atomic(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".flac.tmp")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(x, -1.0, 1.0), SR, format="FLAC", subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_chunk(jobs: list[RenderJob]) -> list[tuple[str, float]]:
    """Render a chunk of utterances (festival ones in one batch); returns (id, seconds)."""
    with tempfile.TemporaryDirectory(prefix="kdasr-tts-") as tmp_s:
        tmp = Path(tmp_s)
        raw: dict[str, np.ndarray] = {}
        fest = [j for j in jobs if j.voice.engine == "festival"]
        if fest:
            raw.update(zip([j.id for j in fest], synth_festival([(j.text, j.voice) for j in fest], tmp)))
        for j in jobs:
            if j.voice.engine == "espeak-ng":
                raw[j.id] = synth_espeak(j.text, j.voice)
            elif j.voice.engine == "flite":
                raw[j.id] = synth_flite(j.text, j.voice, tmp)
            elif j.voice.engine in ("hibari", "kokoro"):
                raw[j.id] = synth_neural(j.text, j.voice, utt_rng(j.seed, j.id, stream=2))
            elif j.voice.engine != "festival":
                raise KdasrError(f"unknown TTS engine {j.voice.engine!r}")
        done = []
        for j in jobs:
            x = raw[j.id]
            if "warp" in j.voice.params:
                x = warp_formants(x, j.voice.params["warp"])
            x = trim_silence(x)
            if x.size == 0:
                raise KdasrError(f"{j.voice.describe()} produced silence for {j.text!r}")
            rng = utt_rng(j.seed, j.id, stream=1)
            if isinstance(j.augment, Conditions):
                x = apply_conditions(x, j.augment, rng, j.noise_dir or j.out_path.parent / "noise")
            else:
                x = apply_augment(x, j.augment, rng)
            write_flac_atomic(j.out_path, x)
            done.append((j.id, x.size / SR))
    return done
