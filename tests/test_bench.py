"""kdasr bench: engines behind one protocol (the torch-eager one built on the torch side and passed
in), encoder-only rows and stage times, and the command working where `import torch` fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_torch_free import BLOCKER

from kdasr.audio import load_audio
from kdasr.data.manifest import read_manifest
from kdasr.models.reference_decode import TorchEagerEngine
from kdasr.reports.engines import OrtEngine, measure
from kdasr.runtime import DecodeOptions, Transcriber


def _data(corpus, n):
    utts = read_manifest(corpus / "test.jsonl")[:n]
    return [load_audio(u.audio) for u in utts], [u.text for u in utts]


def test_torch_engine_matches_ort_greedy(tiny_corpus, tiny_model):
    waves, refs = _data(tiny_corpus, 3)
    ort_engine = OrtEngine(Transcriber(tiny_model, threads=1, vad=False), "ORT fp32")
    opts = DecodeOptions(batch_size=1)
    got = ort_engine.transcribe(waves, opts)
    # from the checkpoint and from the exported model dir (weights read back from its ONNX graphs)
    for source in (tiny_model.parent / "last.pt", tiny_model):
        torch_engine = TorchEagerEngine.load(source, threads=1)
        assert torch_engine.transcribe(waves, opts) == got
        torch_engine.encode_only(waves, opts)
    with pytest.raises(ValueError, match="greedy"):
        torch_engine.transcribe(waves, DecodeOptions(beam=3))


def test_measure_gives_stages_and_encoder_only_row(tiny_corpus, tiny_model):
    waves, refs = _data(tiny_corpus, 3)
    t = Transcriber(tiny_model, threads=1, vad=False)
    engine = OrtEngine(t, "ORT fp32")
    encode_calls = []
    real_encode = t.model.encode

    row, enc = measure(engine, "beam 3 + CTC", DecodeOptions(beam=3, ctc_weight=0.3, batch_size=2), waves, refs)
    assert row.wer is not None and enc.wer is None  # the encoder-only row has no transcript
    assert set(row.stages) == {"encoder graph", "decoder graph", "search (numpy) + rest"}
    assert row.stages["encoder graph"] > 0 and row.stages["decoder graph"] > 0
    assert sum(row.stages.values()) == pytest.approx(row.cpu, rel=1e-6)  # CPU seconds by stage
    assert "encode" not in vars(t.model) and "decoder_step" not in vars(t.model)  # timers removed

    # encode_only replays the batches transcribe used: batch 2 over 3 waves -> 2 encoder calls
    t.model.encode = lambda w, lens: encode_calls.append(w.shape[0]) or real_encode(w, lens)
    engine.encode_only(waves, DecodeOptions(beam=3, ctc_weight=0.3, batch_size=2))
    del t.model.encode
    assert sorted(encode_calls) == [1, 2]
    assert engine.transcribe(waves, DecodeOptions(beam=3, ctc_weight=0.3)) == [
        r.text for r in t.transcribe(waves, DecodeOptions(beam=3, ctc_weight=0.3))
    ]
    assert np.isfinite(row.rtfx)


def test_bench_runs_without_torch(tiny_corpus, tiny_model, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "runtime.md"
    args = ["bench", "--model", str(tiny_model), "--manifest", str(tiny_corpus / "test.jsonl")]
    args += ["--limit", "2", "--threads", "1", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "kdasr", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    for needle in ("encoder only", "decoder graph", "Ratios side by side", "batch 16 vs batch 1", "CPU s"):
        assert needle in text, needle
    assert "torch eager fp32, batch 1" not in text  # no reference engine row without --checkpoint
    doc = json.loads(out.with_suffix(".json").read_text())  # the records beside the report
    search = {s["name"]: s for s in doc["search"]}
    assert doc["recommended"] in search and "fp32 greedy (beam 1)" in search and doc["reference"] is None
    assert doc["engines"][0]["name"] == "ORT fp32, batch 1" and doc["utterances"] == 2
    assert search["fp32 beam 5"]["row"]["wer"] is not None and search["fp32 beam 5"]["encoder_only"]["wer"] is None
    assert doc["sample_rate"] == 16000 and doc["seconds_audio"] > 0
