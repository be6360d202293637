"""Deployment runtime: int8 variants, long audio with segment timestamps (srt/vtt/json), device and
precision errors, and the bench report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from conftest import run_kdasr

from kdasr.audio import load_audio
from kdasr.data.manifest import read_manifest
from kdasr.errors import ModelError
from kdasr.eval.wer import error_rates
from kdasr.runtime import DecodeOptions, Transcriber
from kdasr.runtime.segment import split_points


@pytest.fixture(scope="module")
def int8_model(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "model"
    proc = run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(out), "--check", "--quantize", "int8")
    # the encoder alone is quantised: the decoder's int8 entry is its fp32 graph (kdasr/export/quantize.py)
    assert "check encoder.int8" in proc.stdout and "check decoder.int8" not in proc.stdout
    return out


def test_int8_quantises_the_encoder_and_the_decoder_only_when_asked(tiny_model, int8_model, tmp_path):
    graphs = json.loads((int8_model / "model.json").read_text())["graphs"]
    assert graphs["decoder"]["int8"] == "decoder.onnx" and not (int8_model / "decoder.int8.onnx").exists()
    t = Transcriber(int8_model, precision="int8", threads=1, vad=False)
    assert t.model.rows_interact("encoder") and not t.model.rows_interact("decoder")
    both = tmp_path / "both"
    run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(both), "--quantize", "int8", "--int8-decoder")
    assert json.loads((both / "model.json").read_text())["graphs"]["decoder"]["int8"] == "decoder.int8.onnx"
    assert Transcriber(both, precision="int8", threads=1, vad=False).model.rows_interact("decoder")
    # an exported dir rewritten either way, no checkpoint: model.json first, then the unnamed file removed
    run_kdasr("export", "--out", str(both), "--fp32-decoder")
    assert json.loads((both / "model.json").read_text())["graphs"]["decoder"]["int8"] == "decoder.onnx"
    assert not (both / "decoder.int8.onnx").exists()
    assert not Transcriber(both, precision="int8", threads=1, vad=False).model.rows_interact("decoder")
    run_kdasr("export", "--out", str(both), "--int8-decoder")
    assert (both / "decoder.int8.onnx").is_file()
    assert Transcriber(both, precision="int8", threads=1, vad=False).model.rows_interact("decoder")
    bad = run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(tmp_path / "x"), "--int8-decoder",
                    check=False, env={"COLUMNS": "200"})
    assert bad.returncode == 2 and "without --quantize int8" in " ".join(bad.stderr.split())
    none = run_kdasr("export", "--out", str(tiny_model), "--fp32-decoder", check=False)
    assert none.returncode != 0 and "no int8 variant to change" in none.stderr + none.stdout


@pytest.fixture(scope="module")
def long_file(tiny_corpus, tmp_path_factory):
    """~3 minutes: the test utterances repeated with 0.6 s pauses."""
    waves = [load_audio(u.audio) for u in read_manifest(tiny_corpus / "test.jsonl")]
    gap = np.zeros(9600, np.float32)
    parts = [x for _ in range(40) for w in waves for x in (w, gap)]
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.concatenate(parts)[: 180 * 16000], 16000)
    return path


def test_int8_output_stays_close(tiny_corpus, int8_model):
    info = json.loads((int8_model / "model.json").read_text())
    assert info["graphs"]["encoder"]["int8"] == "encoder.int8.onnx"
    utts = read_manifest(tiny_corpus / "test.jsonl")
    fp32 = Transcriber(int8_model, vad=False).transcribe([u.audio for u in utts])
    int8 = Transcriber(int8_model, precision="int8", vad=False).transcribe([u.audio for u in utts])
    refs = [u.text for u in utts]
    gap = error_rates(refs, [r.text for r in int8]).cer - error_rates(refs, [r.text for r in fp32]).cer
    # the 6-step tiny model is near-random, so its outputs are fragile; the real gap is in runtime.md
    assert abs(gap) <= 10.0, gap


def test_missing_variant_and_missing_cuda_are_clear_errors(tiny_model):
    with pytest.raises(ModelError, match="no int8 variant"):
        Transcriber(tiny_model, precision="int8", vad=False)
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelError, match="no CUDA provider"):
            Transcriber(tiny_model, device="cuda", vad=False)


def test_split_points_cut_in_pauses():
    sr = 16000
    rng = np.random.default_rng(0)
    speech = [rng.standard_normal(int(sr * s)).astype(np.float32) * 0.3 for s in (7, 9, 6, 8, 5)]
    gap = np.zeros(sr // 2, np.float32)
    wave = np.concatenate([x for s in speech for x in (s, gap)])
    spans = split_points(wave, sr, max_seconds=20, min_seconds=5)
    assert spans[0][0] == 0 and spans[-1][1] == len(wave)
    assert all(b - a <= 20 * sr for a, b in spans)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    for _, b in spans[:-1]:  # every cut lands in silence
        assert np.abs(wave[max(0, b - 800) : b + 800]).max() == 0.0


def test_three_minute_file_gives_ordered_segments(tiny_model, long_file, tmp_path):
    res = Transcriber(tiny_model, vad=False).transcribe([str(long_file)], DecodeOptions(max_segment_seconds=20))[0]
    assert abs(res.duration - 180.0) < 0.01 and len(res.segments) >= 9
    starts, ends = [s.start for s in res.segments], [s.end for s in res.segments]
    assert starts[0] == 0.0 and abs(ends[-1] - 180.0) < 0.01
    assert all(a < b for a, b in zip(starts, ends)) and starts[1:] == ends[:-1]
    assert all(b - a <= 20.0 + 1e-6 for a, b in zip(starts, ends))
    assert res.tokens == [t for s in res.segments for t in s.tokens]
    srt = run_kdasr("transcribe", str(long_file), "--model", str(tiny_model), "--format", "srt").stdout
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)", srt)
    secs = [
        (int(a) * 3600 + int(b) * 60 + int(c) + int(d) / 1000, int(e) * 3600 + int(f) * 60 + int(g) + int(h) / 1000)
        for a, b, c, d, e, f, g, h in stamps
    ]
    assert secs and all(a < b for a, b in secs) and all(secs[i][1] <= secs[i + 1][0] for i in range(len(secs) - 1))
    run_kdasr(
        "transcribe", str(long_file), "--model", str(tiny_model), "--format", "vtt", "--output-dir", str(tmp_path)
    )
    assert (tmp_path / "long.vtt").read_text().startswith("WEBVTT")
    doc = json.loads(  # --no-vad: the same whole-file segmentation as the API's default above
        run_kdasr("transcribe", str(long_file), "--model", str(tiny_model), "--format", "json", "--no-vad").stdout
    )
    assert [s["start"] for s in doc[0]["segments"]] == starts


def test_bench_writes_report(tiny_corpus, tiny_model, int8_model, tmp_path):
    out = tmp_path / "runtime.md"
    run_kdasr(
        "bench",
        "--model",
        str(int8_model),
        "--manifest",
        str(tiny_corpus / "test.jsonl"),
        "--checkpoint",
        str(tiny_model.parent / "last.pt"),
        "--limit",
        "3",
        "--out",
        str(out),
    )
    text = out.read_text()
    for needle in ("torch eager", "ORT int8", "batch 16", "beam 5", "peak RSS", "CPU:", "onnxruntime"):
        assert needle in text, needle


def test_beam_search_and_subtitles_without_torch(tiny_corpus, tiny_model, tmp_path):
    import os
    import subprocess
    import sys

    from test_torch_free import BLOCKER

    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    audio = read_manifest(tiny_corpus / "test.jsonl")[0].audio
    args = ["transcribe", audio, "--model", str(tiny_model), "--beam", "3", "--ctc-weight", "0.3", "--format", "srt"]
    proc = subprocess.run([sys.executable, "-m", "kdasr", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "-->" in proc.stdout or proc.stdout == ""
