"""One JSON record per (system, evaluation set): what `kdasr eval --json` and `kdasr eval-reference
--json` write, and what report tables are generated from. Torch-free.

Since record version 2 a record also holds its per-utterance counts, column-wise under
"per_utterance" (ids, word errors, reference words, char errors, reference chars), so that two
systems' difference on the same set can carry a paired bootstrap interval (kdasr.eval.bootstrap).
Older records (no "per_utterance") still read; tables then show no interval for them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io_utils import atomic_write_text
from .run import EvalReport

RECORD_VERSION = 2
PER_UTTERANCE = ("ids", "word_errors", "words", "char_errors", "chars")


def per_utterance_columns(report: EvalReport) -> dict[str, list]:
    s = report.scores
    return {
        "ids": [u.id for u in s], "word_errors": [u.word_errors for u in s], "words": [u.words for u in s],
        "char_errors": [u.char_errors for u in s], "chars": [u.chars for u in s],
    }


def result_record(system: str, manifest: Path, report: EvalReport, decode_seconds: float, threads: int | None,
                  **extra) -> dict:
    r = report.rates
    rec = {
        "record_version": RECORD_VERSION,
        "system": system, "manifest": str(manifest), "set": Path(manifest).stem, "wer": r.wer, "cer": r.cer,
        "utterances": r.utterances, "words": r.words, "word_errors": r.word_errors,
        "seconds_audio": round(report.seconds_audio, 3), "decode_seconds": round(decode_seconds, 3),
        "rtfx": report.seconds_audio / decode_seconds if decode_seconds > 0 else None,
        "threads": threads, "failures": report.failures, **extra,
    }
    if report.scores:
        rec["per_utterance"] = per_utterance_columns(report)
    return rec


def write_result(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def read_results(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out.append(json.load(f))
    return out


def per_utterance(record: dict) -> dict[str, np.ndarray] | None:
    """The record's per-utterance columns as arrays ('ids' as an object array), or None for a record
    written before they existed. ValueError when the columns disagree in length."""
    cols = record.get("per_utterance")
    if not cols:
        return None
    missing = [k for k in PER_UTTERANCE if k not in cols]
    if missing:
        raise ValueError(f"per_utterance lacks {', '.join(missing)}")
    if len({len(cols[k]) for k in PER_UTTERANCE}) != 1:
        raise ValueError("per_utterance columns differ in length")
    out = {k: np.asarray(cols[k], dtype=np.int64) for k in PER_UTTERANCE[1:]}
    out["ids"] = np.asarray(cols["ids"], dtype=object)
    return out
