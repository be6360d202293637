"""The committed model export/demo-en is real: it loads by default and transcribes the held-out samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdasr.eval.run import evaluate_manifest
from kdasr.runtime import Transcriber

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_shipped_model_transcribes_samples():
    t = Transcriber(threads=2)  # no model dir: the shipped export/demo-en
    assert t.model.model_dir.resolve() == (ROOT / "export" / "demo-en").resolve()
    opts = t.recommended_options()  # what model.json recommends: what `make demo` uses
    assert opts.beam > 1 and opts.ctc_weight > 0
    report = evaluate_manifest(ROOT / "eval/samples/manifest.jsonl", None, transcriber=t, opts=opts)
    assert report.failures == 0 and report.rates.utterances == 8
    # measured 27.7 % WER on these 8 clips at commit time (demo-en-v1: 33.7); a broken export or tokenizer gives ~100 %
    assert report.rates.wer < 45.0
