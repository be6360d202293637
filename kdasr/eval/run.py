"""`kdasr eval`: transcribe a manifest with the runtime and score it. Torch-free.

Each utterance is the manifest's slice of its audio file (`start`, `duration`: a segmented Kaldi
import scores its segments, not whole recordings). References go through the project's text
policy (`normalize_text`) like training targets do; a reference the policy rejects (digits) is
not scored but reported, one that normalises to nothing is scored as empty (its hypothesis words
are insertions) and reported. Audio that cannot be read is a per-utterance failure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.manifest import Utterance, read_manifest
from ..errors import KdasrError, TextError
from ..io_utils import atomic_open
from ..runtime import AudioSlice, DecodeOptions, Failure, Transcriber
from ..text import normalize_text
from .wer import ErrorRates, UtteranceScore, error_rates, utterance_scores


@dataclass(frozen=True)
class Problem:
    id: str
    reason: str


@dataclass(frozen=True)
class EvalReport:
    rates: ErrorRates
    failures: int
    seconds_audio: float
    failed: list[Problem] = field(default_factory=list)  # audio that could not be decoded
    skipped: list[Problem] = field(default_factory=list)  # references not scored (text policy)
    emptied: list[Problem] = field(default_factory=list)  # references scored as empty after normalising
    scores: list[UtteranceScore] = field(default_factory=list)  # per scored utterance (paired bootstrap)


def reference(u: Utterance) -> tuple[str | None, str | None]:
    """(normalised reference or None when it cannot be scored, problem to report or None)."""
    try:
        ref = normalize_text(u.text)
    except TextError:
        return None, "reference contains digits (spell numbers out in words); not scored"
    if not ref and u.text.strip():
        return ref, f"reference {u.text[:40]!r} normalises to nothing; scored as empty"
    return ref, None


def _whisper_scored(text: str) -> str:
    try:
        from ..whisper_reference import normalise_hypothesis

        return normalise_hypothesis(text)
    except ImportError:  # num2words (the reference extra) missing: digits dropped instead of spelled
        import re

        return normalize_text(re.sub(r"\d", " ", text))


def _nothing_to_score(manifest: Path, n: int, failed: list[Problem], skipped: list[Problem]) -> KdasrError:
    parts = []
    if failed:
        parts.append(f"{len(failed)} failed (first: {failed[0].id}: {failed[0].reason})")
    if skipped:
        parts.append(f"{len(skipped)} references not scorable (first: {skipped[0].id}: {skipped[0].reason})")
    return KdasrError(f"{manifest}: nothing to score: of {n} utterances, " + "; ".join(parts))


def evaluate_manifest(
    manifest: Path,
    model_dir: Path | None,
    method: str = "attention",
    limit: int | None = None,
    hyps_path: Path | None = None,
    threads: int | None = None,
    device: str = "cpu",
    transcriber: Transcriber | None = None,
    opts: DecodeOptions | None = None,
) -> EvalReport:
    """`opts` (all decoding options) wins over `method` when given. Raises KdasrError (one line)
    when the manifest has no utterances or none can be scored."""
    utts = read_manifest(manifest)[:limit]
    if not utts:
        raise KdasrError(f"{manifest}: no utterances to score" + (" (--limit 0)" if limit == 0 else ""))
    refs_by_id: dict[str, str] = {}
    rows: dict[str, dict] = {}
    skipped, emptied = [], []
    for u in utts:
        ref, problem = reference(u)
        if ref is None:
            skipped.append(Problem(u.id, problem))
            rows[u.id] = {"id": u.id, "ref_raw": u.text, "skipped": problem}
            continue
        refs_by_id[u.id] = ref
        if problem:
            emptied.append(Problem(u.id, problem))
    scored = [u for u in utts if u.id in refs_by_id]
    failed: list[Problem] = []
    ids, refs, hyps, seconds = [], [], [], 0.0
    if scored:
        t = transcriber or Transcriber(model_dir, device=device, threads=threads, vad=False)  # manifest slices: whole
        # the manifest's slice of each file, read by the runtime itself (only that part is decoded)
        inputs = [AudioSlice(u.audio, u.start, u.duration, name=u.audio) for u in scored]
        results = t.transcribe(inputs, opts or DecodeOptions(method=method))
        # a whisper model (kdasr import-whisper) writes cased, punctuated text with digits: scored
        # under the reference recogniser's policy (numbers spelled out, then normalize_text)
        whisper = t.model.spec.architecture.get("tokenizer") == "whisper-bpe"
        for u, r in zip(scored, results):
            if isinstance(r, Failure):
                failed.append(Problem(u.id, f"{r.source}: {r.reason}"))
                rows[u.id] = {"id": u.id, "error": f"{r.source}: {r.reason}"}
                continue
            ids.append(u.id)
            refs.append(refs_by_id[u.id])
            hyp = _whisper_scored(r.text) if whisper else r.text
            hyps.append(hyp)
            seconds += r.duration
            extra = {k: u.extra[k] for k in ("engine", "voice") if k in u.extra}
            raw = {"raw": r.text} if whisper else {}
            rows[u.id] = {"id": u.id, "ref": refs_by_id[u.id], "hyp": hyp, **raw, **extra}
    if hyps_path:
        with atomic_open(hyps_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(rows[u.id]) + "\n" for u in utts)
    if not refs:
        raise _nothing_to_score(manifest, len(utts), failed, skipped)
    scores = utterance_scores(ids, refs, hyps)
    return EvalReport(error_rates(refs, hyps), len(failed), seconds, failed, skipped, emptied, scores)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}%"  # NaN: no reference words


def summary_line(manifest: Path, report: EvalReport) -> str:
    r = report.rates
    parts = [f"{manifest}: {r.utterances} utts, {r.words} words, WER {_pct(r.wer)}, CER {_pct(r.cer)}"]
    if r.empty_references:
        parts.append(f"{r.empty_references} empty reference(s) ({r.empty_reference_insertions} words inserted)")
    if report.skipped:
        parts.append(f"{len(report.skipped)} reference(s) not scored")
    if report.failures:
        parts.append(f"{report.failures} failed")
    return ", ".join(parts)


def problem_lines(report: EvalReport, most: int = 10) -> list[str]:
    """stderr lines: `error:` per failed utterance, `warning:` per reference problem (`most` of each)."""
    out = []
    for kind, items in (("error", report.failed), ("warning", report.skipped + report.emptied)):
        out += [f"{kind}: {p.id}: {p.reason}" for p in items[:most]]
        if len(items) > most:
            out.append(f"{kind}: ... and {len(items) - most} more (see --hyps)")
    return out
