"""The TTS voice inventory for the demo corpus, with a held-out set for test only.

Engines (all Debian main, see shared/DATA-SOURCES.md section 2):
  espeak-ng  8 English accents x human-ish variants, random speed (-s) and pitch (-p)
  flite      kal16, awb, rms, slt with random duration_stretch and mean F0
  festival   kal_diphone (random Duration_Stretch), cmu_us_slt_arctic_hts

HELD-OUT voices (only ever used for test_heldout.jsonl, never for train/dev/test):
  festival   ked_diphone               a recorded human speaker only festival has
  espeak-ng  accent en-gb-scotland     entirely, with any variant
  espeak-ng  variants f4, steph2, Annie (female) and m3, m6 (male), with any accent
Seen voices exclude all of these, so test vs test_heldout measures generalisation
to unheard speakers/accents.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field

import numpy as np

from kdasr.data.textcorpus import require_program

ESPEAK_ACCENTS = (
    "en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
HELDOUT_ACCENTS = frozenset({"en-gb-scotland"})
HELDOUT_VARIANTS = frozenset({"f4", "steph2", "Annie", "m3", "m6"})
# Novelty variants (DATA-SOURCES) plus the radio "announcer" and the speed-test voice.
NOVELTY_VARIANTS = frozenset({
    "Demonic", "croak", "whisper", "whisperf", "UniRobot", "anikaRobot", "Tweaky", "announcer", "fast",
})

# Seen (train/dev/test) voice families and their draw weights: espeak-ng gives the most
# pseudo-speakers, the recorded flite/festival voices give natural-sounding ones.
SEEN_FAMILIES: tuple[tuple[str, str, float], ...] = (
    ("espeak-ng", "*", 0.45),
    ("flite", "kal16", 0.08),
    ("flite", "awb", 0.09),
    ("flite", "rms", 0.09),
    ("flite", "slt", 0.09),
    ("festival", "kal_diphone", 0.08),
    ("festival", "cmu_us_slt_arctic_hts", 0.12),
)
HELDOUT_FAMILIES: tuple[tuple[str, str, float], ...] = (
    ("festival", "ked_diphone", 0.34),
    ("espeak-ng", "scotland", 0.33),
    ("espeak-ng", "heldout-variant", 0.33),
)
# Mean F0 range (Hz) per flite voice: three male speakers, one female.
FLITE_F0 = {"kal16": (85.0, 140.0), "awb": (85.0, 140.0), "rms": (80.0, 130.0), "slt": (150.0, 230.0)}


def is_novelty(variant: str) -> bool:
    """Robotic/whispered/effect variants that do not sound like a human speaker."""
    return variant in NOVELTY_VARIANTS or variant.lower().startswith("robosoft")


@dataclass(frozen=True)
class Voice:
    """One TTS voice setting: engine, voice name and the knob values that vary it."""

    engine: str
    name: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def speaker(self) -> str:
        """The underlying voice, without the random knob settings."""
        return f"{self.engine}:{self.name}"

    def describe(self) -> str:
        knobs = " ".join(f"{k}={v:g}" for k, v in sorted(self.params.items()))
        return f"{self.speaker} {knobs}".strip()


@functools.lru_cache(maxsize=1)
def espeak_variants() -> dict[str, str]:
    """Installed espeak-ng variants {file name: 'F'|'M'}, read once from `--voices=variant`.

    An unknown variant name is silently ignored by espeak-ng, so every name we use must
    come from this list.
    """
    require_program("espeak-ng", "espeak-ng")
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    variants: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            variants[cols[4][3:]] = cols[2].split("/")[-1]
    return variants


def _variant_pool(held_out: bool) -> tuple[list[str], list[str]]:
    """(female, male) variant names usable in the seen or held-out set."""
    female: list[str] = []
    male: list[str] = []
    for name, gender in sorted(espeak_variants().items()):
        if is_novelty(name) or (name in HELDOUT_VARIANTS) != held_out:
            continue
        (female if gender == "F" else male).append(name)
    return female, male


def _espeak(rng: np.random.Generator, accents: list[str], variants: tuple[list[str], list[str]]) -> Voice:
    female, male = variants
    pool = female if (rng.random() < 0.5 and female) or not male else male  # gender-balanced
    accent = accents[int(rng.integers(len(accents)))]
    variant = pool[int(rng.integers(len(pool)))]
    params = {"s": float(rng.integers(130, 211)), "p": float(rng.integers(20, 81))}
    return Voice("espeak-ng", f"{accent}+{variant}", params)


def _flite(rng: np.random.Generator, name: str) -> Voice:
    lo, hi = FLITE_F0[name]
    params = {"duration_stretch": round(float(rng.uniform(0.85, 1.2)), 3),
              "int_f0_target_mean": round(float(rng.uniform(lo, hi)), 1)}
    return Voice("flite", name, params)


def _festival(rng: np.random.Generator, name: str) -> Voice:
    if name.endswith("_diphone"):  # Duration_Stretch has no effect on the HTS voice
        return Voice("festival", name, {"Duration_Stretch": round(float(rng.uniform(0.85, 1.2)), 3)})
    return Voice("festival", name, {})


def draw_voice(rng: np.random.Generator, *, held_out: bool = False) -> Voice:
    """A random voice: from the seen inventory, or (held_out=True) from the held-out one."""
    families = HELDOUT_FAMILIES if held_out else SEEN_FAMILIES
    weights = np.array([w for _, _, w in families])
    engine, name, _ = families[int(rng.choice(len(families), p=weights / weights.sum()))]
    seen_accents = [a for a in ESPEAK_ACCENTS if a not in HELDOUT_ACCENTS]
    if engine == "flite":
        return _flite(rng, name)
    if engine == "festival":
        return _festival(rng, name)
    if not held_out:
        return _espeak(rng, seen_accents, _variant_pool(False))
    if name == "scotland":  # held-out accent with any human-ish variant
        seen_f, seen_m = _variant_pool(False)
        held_f, held_m = _variant_pool(True)
        return _espeak(rng, sorted(HELDOUT_ACCENTS), (seen_f + held_f, seen_m + held_m))
    return _espeak(rng, list(ESPEAK_ACCENTS), _variant_pool(True))


def draw_voices(rng: np.random.Generator, n: int, *, held_out: bool = False) -> list[Voice]:
    """n voices with pairwise different speakers (engine + name), e.g. for one sentence."""
    voices: list[Voice] = []
    for _ in range(100 * n):
        if len(voices) == n:
            break
        v = draw_voice(rng, held_out=held_out)
        if all(v.speaker != u.speaker for u in voices):
            voices.append(v)
    return voices


def is_held_out(voice: Voice) -> bool:
    """True for any voice that must never appear in train/dev (see module docstring)."""
    if voice.engine == "festival":
        return voice.name == "ked_diphone"
    if voice.engine == "espeak-ng":
        accent, _, variant = voice.name.partition("+")
        return accent in HELDOUT_ACCENTS or variant in HELDOUT_VARIANTS
    return False
