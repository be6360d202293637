"""One JSON record per (system, evaluation set): what `kdasr eval --json` and `kdasr eval-reference
--json` write, and what report tables are generated from. Torch-free."""

from __future__ import annotations

import json
from pathlib import Path

from ..io_utils import atomic_write_text
from .run import EvalReport


def result_record(system: str, manifest: Path, report: EvalReport, decode_seconds: float, threads: int | None,
                  **extra) -> dict:
    r = report.rates
    return {
        "system": system, "manifest": str(manifest), "set": Path(manifest).stem, "wer": r.wer, "cer": r.cer,
        "utterances": r.utterances, "words": r.words, "word_errors": r.word_errors,
        "seconds_audio": round(report.seconds_audio, 3), "decode_seconds": round(decode_seconds, 3),
        "rtfx": report.seconds_audio / decode_seconds if decode_seconds > 0 else None,
        "threads": threads, "failures": report.failures, **extra,
    }


def write_result(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def read_results(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            out.append(json.load(f))
    return out
