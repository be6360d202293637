"""The corpus-v2 voice inventory: the v1 Debian engines plus the neural voices, and a held-out
Kokoro style.

Mix per drawn utterance (train/dev/test), and why:
  espeak-ng 0.25, flite 0.18, festival 0.12  the v1 families (their v1 proportions): many cheap
                  pseudo-speakers
  hibari    0.42  the only neural voice that is cheap (~0.02 s compute per audio second), varied by
                  rate, f0 scale (pitch), US/British G2P and a formant warp: sounds like a person
  kokoro    0.03  style blends = as many distinct neural pseudo-speakers as wanted, but ~0.8 s of
                  compute per audio second on one core: the budget, not the wish, sets its share
Every voice of every engine also gets, half the time, a formant+pitch warp (`warp`, cents, sox
`pitch`), a vocal-tract-length-like change that the v1 engines' own knobs lack.

HELD OUT of train/dev/test: the Kokoro style `jf_tebukuro` and every blend that uses it. It speaks
test_neural_heldout only (blends where it has weight >= 0.6), so each run measures an unseen neural
speaker. The v1 held-out voices (voices.HELDOUT_FAMILIES) still speak test_heldout.
"""

from __future__ import annotations

import numpy as np

from kdasr.data.neural_tts import KOKORO_STYLES, blend_name
from kdasr.data.voices import Voice, draw_voice

HELDOUT_STYLE = "jf_tebukuro"
SEEN_STYLES = tuple(s for s in KOKORO_STYLES if s != HELDOUT_STYLE)
V2_FAMILIES: tuple[tuple[str, float], ...] = (("classic", 0.55), ("hibari", 0.42), ("kokoro", 0.03))


def _warp(rng: np.random.Generator) -> float | None:
    return round(float(rng.uniform(-250.0, 250.0)), 0) if rng.random() < 0.5 else None


def _with_warp(v: Voice, rng: np.random.Generator) -> Voice:
    w = _warp(rng)
    return v if w is None else Voice(v.engine, v.name, {**v.params, "warp": w})


def draw_hibari(rng: np.random.Generator) -> Voice:
    params = {"speed": round(float(rng.uniform(0.8, 1.2)), 2), "f0": round(float(rng.uniform(0.75, 1.3)), 2),
              "british": float(rng.random() < 0.3)}
    return _with_warp(Voice("hibari", "heart", params), rng)


def draw_kokoro(rng: np.random.Generator, *, held_out: bool = False) -> Voice:
    """A pseudo-speaker: a random convex blend of 1-3 styles (seen styles, or led by the held-out one)."""
    if held_out:
        w_h = float(rng.uniform(0.6, 1.0))
        other = SEEN_STYLES[int(rng.integers(len(SEEN_STYLES)))]
        weights = {HELDOUT_STYLE: w_h, other: 1.0 - w_h}
    else:
        k = int(rng.integers(1, 4))
        chosen = rng.choice(len(SEEN_STYLES), size=k, replace=False)
        w = rng.dirichlet(np.ones(k))
        weights = {SEEN_STYLES[int(i)]: float(x) for i, x in zip(chosen, w)}
    # rounded weights must still sum to 1: give the rounding residue to the largest
    rounded = {s: round(x, 2) for s, x in weights.items() if round(x, 2) > 0}
    top = max(rounded, key=rounded.get)
    rounded[top] = round(rounded[top] + 1.0 - sum(rounded.values()), 2)
    params = {"speed": round(float(rng.uniform(0.8, 1.2)), 2), "british": float(rng.random() < 0.3)}
    return _with_warp(Voice("kokoro", blend_name(rounded), params), rng)


def draw_voice_v2(rng: np.random.Generator) -> Voice:
    """A seen voice of corpus v2 (train/dev/test)."""
    weights = np.array([w for _, w in V2_FAMILIES])
    family = V2_FAMILIES[int(rng.choice(len(V2_FAMILIES), p=weights / weights.sum()))][0]
    if family == "hibari":
        return draw_hibari(rng)
    if family == "kokoro":
        return draw_kokoro(rng)
    return _with_warp(draw_voice(rng), rng)


def draw_voices_v2(rng: np.random.Generator, n: int) -> list[Voice]:
    """n seen voices with pairwise different speakers for one sentence (hibari counts once)."""
    voices: list[Voice] = []
    for _ in range(100 * n):
        if len(voices) == n:
            break
        v = draw_voice_v2(rng)
        if all(v.speaker != u.speaker for u in voices):
            voices.append(v)
    return voices


def uses_heldout_style(v: Voice) -> bool:
    return v.engine == "kokoro" and HELDOUT_STYLE in v.name
