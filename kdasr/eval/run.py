"""`kdasr eval`: transcribe a manifest with the runtime and score it. Torch-free."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..data.manifest import read_manifest
from ..io_utils import atomic_open
from ..runtime import DecodeOptions, Failure, Transcriber
from .wer import ErrorRates, error_rates


@dataclass(frozen=True)
class EvalReport:
    rates: ErrorRates
    failures: int
    seconds_audio: float


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
    """`opts` (all decoding options) wins over `method` when given."""
    utts = read_manifest(manifest)[:limit]
    t = transcriber or Transcriber(model_dir, device=device, threads=threads)
    results = t.transcribe([u.audio for u in utts], opts or DecodeOptions(method=method))
    refs, hyps, rows, failures, seconds = [], [], [], 0, 0.0
    for u, r in zip(utts, results):
        if isinstance(r, Failure):
            failures += 1
            rows.append({"id": u.id, "error": r.reason})
            continue
        refs.append(u.text)
        hyps.append(r.text)
        seconds += r.duration
        rows.append(
            {"id": u.id, "ref": u.text, "hyp": r.text, **{k: u.extra[k] for k in ("engine", "voice") if k in u.extra}}
        )
    if hyps_path:
        with atomic_open(hyps_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    return EvalReport(error_rates(refs, hyps), failures, seconds)
