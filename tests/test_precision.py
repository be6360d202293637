"""The precision a model dir recommends (model.json "precision", kdasr/spec/precision.py): recorded by
`kdasr export --recommend-precision`, run by default by the Transcriber and the CLI, an explicit
precision wins, an old model.json without it runs fp32, and a precision the dir has no graphs for is
one error line. On a copy of the committed demo-en-v1 (format 1, fp32 + int8 graphs): real
onnxruntime sessions, which graph file ran is told by the encoder's output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer

from kdasr.cli import app as cli_app
from kdasr.errors import ModelError
from kdasr.export.recommend import update_recommendation
from kdasr.runtime import Transcriber
from kdasr.runtime.onnx_model import make_session, run_graph
from kdasr.spec.modelspec import ModelSpec, load_model_spec
from kdasr.spec.precision import recommendation
from tests.conftest import run_kdasr

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "eval" / "samples" / "manifest.jsonl"


@pytest.fixture
def model_dir(tmp_path) -> Path:
    out = tmp_path / "demo-en-v1"
    shutil.copytree(ROOT / "export" / "demo-en-v1", out)
    return out


WAVE = (0.05 * np.random.default_rng(0).standard_normal((1, 16000))).astype(np.float32)
LENS = np.array([WAVE.shape[1]], dtype=np.int64)


@pytest.fixture(scope="module")
def memories() -> dict[str, np.ndarray]:
    """Each encoder file's own output on WAVE (sessions of the committed files)."""
    out = {file: run_graph(make_session(ROOT / "export" / "demo-en-v1" / file, threads=1),
                           {"waveform": WAVE, "waveform_lens": LENS})["memory"]
           for file in ("encoder.onnx", "encoder.int8.onnx")}
    assert not np.array_equal(*out.values())  # the check can tell them apart
    return out


def _ran(t: Transcriber, memories: dict[str, np.ndarray]) -> str:
    """Which encoder file the Transcriber's session is: its output equals that file's own session's."""
    got = t.model.encode(WAVE, LENS)["memory"]
    same = [f for f, m in memories.items() if np.array_equal(m, got)]
    assert len(same) == 1, same
    return same[0]


def test_an_int8_recommendation_runs_int8_and_an_explicit_precision_wins(model_dir, memories):
    spec = update_recommendation(model_dir, precision=recommendation(["int8"]))
    assert dict(spec.precision) == {"cpu": "int8"}
    raw = json.loads((model_dir / "model.json").read_text())
    assert raw["precision"] == {"cpu": "int8"} and raw["format_version"] == 1  # nothing else rewritten
    assert raw["decoding"] == {"beam": 10, "ctc_weight": 0.2}

    default = Transcriber(model_dir, threads=1, vad=False)
    assert default.model.precision == "int8" and _ran(default, memories) == "encoder.int8.onnx"
    explicit = Transcriber(model_dir, threads=1, precision="fp32", vad=False)
    assert explicit.model.precision == "fp32" and _ran(explicit, memories) == "encoder.onnx"
    # the CPU-oriented int8 graphs are recommended for the CPU only: a CUDA session would load fp32
    assert spec.precision_for("cpu") == "int8" and spec.precision_for("cuda") == "fp32"


def test_an_old_model_json_without_the_field_runs_fp32(model_dir, memories):
    assert "precision" not in json.loads((model_dir / "model.json").read_text())
    t = Transcriber(model_dir, threads=1, vad=False)
    assert dict(t.model.spec.precision) == {} and t.model.precision == "fp32"
    assert _ran(t, memories) == "encoder.onnx"


def test_the_field_round_trips_and_a_recommendation_without_graphs_fails_at_load(model_dir):
    spec = load_model_spec(model_dir)
    for value in ({"cpu": "int8"}, {}):
        again = ModelSpec.from_dict({**spec.to_dict(), "precision": value}, "x")
        assert dict(again.precision) == value and again.to_dict()["precision"] == value
    raw = json.loads((model_dir / "model.json").read_text())
    for bad, says in (({"cpu": "fp16"}, "no fp16 variant of encoder.onnx, decoder.onnx"),
                      ({"tpu": "int8"}, "'tpu' is not a device"), ({"cpu": "int4"}, "not one of fp32, int8, fp16"),
                      ("int8", "must be an object")):
        (model_dir / "model.json").write_text(json.dumps({**raw, "precision": bad}))
        with pytest.raises(ModelError, match=f"^{model_dir / 'model.json'}: .*{says}") as e:
            Transcriber(model_dir, vad=False)
        assert "\n" not in str(e.value)


def test_recommend_precision_values():
    assert recommendation(["int8"]) == {"cpu": "int8"}
    assert recommendation(["fp16"]) == {"cuda": "fp16"}
    assert recommendation(["int8", "cuda=int8"]) == {"cpu": "int8", "cuda": "int8"}
    assert recommendation(["fp32"]) == {"cpu": "fp32", "cuda": "fp32"}  # recorded as none: fp32 everywhere
    for bad in ("int4", "gpu=fp16", "cpu="):
        with pytest.raises(ValueError, match="must be one of"):
            recommendation([bad])


def test_every_precision_flag_defaults_to_the_models_recommendation():
    commands = typer.main.get_command(cli_app).commands
    for name in ("transcribe", "eval", "tune", "serve"):
        param = next(p for p in commands[name].params if p.name == "precision")
        assert param.default is None, name
        assert "Default: the precision the model recommends for the device" in param.help, name


@pytest.mark.slow  # CLI subprocesses
def test_cli_records_and_refuses_in_one_line_and_eval_json_says_what_ran(model_dir, tmp_path):
    before = (model_dir / "model.json").read_text()
    bad = run_kdasr("export", "--out", str(model_dir), "--recommend-precision", "fp16", check=False)
    assert bad.returncode == 1 and (model_dir / "model.json").read_text() == before
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {model_dir / 'model.json'}: ") and "fp16" in lines[0]
    # exporting: a precision the export would not write is refused before anything is loaded or written
    out = tmp_path / "new"
    refused = run_kdasr("export", str(tmp_path / "no.pt"), "--out", str(out), "--recommend-precision", "int8",
                        check=False)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.strip() == (f"error: {out}: --recommend-precision int8, but this export writes no int8 "
                                      "graphs (add --quantize int8)")

    # in place, where torch cannot be imported (the deployment side: only model.json is written)
    from tests.test_torch_free import BLOCKER

    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCKER)
    no_torch = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "block"), str(ROOT)])}
    ok = run_kdasr("export", "--out", str(model_dir), "--recommend-precision", "int8", env=no_torch)
    assert "int8 on cpu" in ok.stdout
    for flags, ran in (((), "int8"), (("--precision", "fp32"), "fp32")):
        record = tmp_path / f"{ran}.json"
        run_kdasr("eval", "--manifest", str(SAMPLES), "--model", str(model_dir), "--limit", "1", "--threads", "1",
                  "--beam", "1", "--json", str(record), *flags)
        got = json.loads(record.read_text())
        assert (got["precision"], got["device"]) == (ran, "cpu")


def test_the_model_card_states_the_recommended_precision(model_dir):
    from kdasr.reports.model_card import CardInputs, build_card

    def lines(text: str, title: str) -> list[str]:
        return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0].splitlines()

    before = build_card(CardInputs(model_dir))
    assert "- Recommended precision (model.json, run unless `--precision` says otherwise): none recorded: **fp32**" \
        in lines(before, "What it is")
    assert any(x.endswith("--precision int8") for x in lines(before, "How to use"))  # int8 there, not recommended
    update_recommendation(model_dir, precision={"cpu": "int8"})
    after = build_card(CardInputs(model_dir))
    assert any(x.startswith("- Recommended precision") and x.endswith("**int8** on cpu, fp32 elsewhere")
               for x in lines(after, "What it is"))
    howto = lines(after, "How to use")
    assert not any("--precision" in x for x in howto) and any(x.endswith("# int8 on CPU") for x in howto)
    assert any("--quantize int8 --recommend-precision cpu=int8" in x for x in lines(after, "How it was made"))


def test_tune_runs_and_records_the_recommended_precision(model_dir, tmp_path):
    import soundfile as sf

    from kdasr.eval.tune import TuneConfig, best_point, options_document, run_tune

    sf.write(tmp_path / "noise.wav", WAVE[0], 16000)
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text(json.dumps({"id": "n", "audio": str(tmp_path / "noise.wav"), "text": "hello there",
                                    "duration": 1.0}) + "\n")
    update_recommendation(model_dir, precision={"cpu": "int8"})
    runs = {}
    for given in (None, "fp32"):
        cfg = TuneConfig(model_dir, manifest, tmp_path / f"points-{given}", {"beam": [1]}, threads=1, precision=given)
        points = run_tune(cfg)
        runs[given] = (points[0].record["precision"], options_document(cfg, points, best_point(points))["precision"])
    assert runs == {None: ("int8", "int8"), "fp32": ("fp32", "fp32")}


@pytest.mark.slow  # a real export (torch)
def test_export_records_it_with_the_variant_and_a_reexport_keeps_it_only_with_it(model_dir, tmp_path):
    import onnxruntime as ort

    from kdasr.export.pipeline import source_precision

    a = tmp_path / "a"
    done = run_kdasr("export", str(model_dir), "--out", str(a), "--quantize", "int8", "--recommend-precision", "int8")
    assert "recommended precision recorded in model.json: int8 on cpu" in done.stdout
    assert json.loads((a / "model.json").read_text())["precision"] == {"cpu": "int8"}
    meta = ort.InferenceSession(str(a / "encoder.int8.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["precision"]) == {"cpu": "int8"}  # a lone graph says it too
    assert Transcriber(a, threads=1, vad=False).model.precision == "int8"
    # a re-export of it keeps the recommendation where it writes int8 graphs again, else it cannot
    assert source_precision([a], ("int8",)) == {"cpu": "int8"} and source_precision([a], ()) == {}


@pytest.mark.parametrize("decoder", ["fp32", "int8"])
def test_int8_text_does_not_depend_on_the_batch(decoder, tmp_path):
    """int8 graphs quantise activations with one scale per tensor, so a batched utterance's text would
    depend on its batch-mates (4 of these 12 changed before). A quantised encoder runs one row per call;
    with the decoder int8 too (`--int8-decoder`), each utterance is decoded alone; with it fp32 (what
    kdasr exports by default), they are decoded in batches, and the text is the same either way."""
    from kdasr.audio import load_audio

    model = ROOT / "export" / "demo-en"  # as shipped: int8 decoder
    if decoder == "fp32":
        model = tmp_path / "demo-en"
        shutil.copytree(ROOT / "export" / "demo-en", model)
        run_kdasr("export", "--out", str(model), "--fp32-decoder")
        assert not (model / "decoder.int8.onnx").exists()

    waves = []
    for manifest in (SAMPLES, ROOT / "eval" / "samples" / "real" / "manifest.jsonl"):
        for line in manifest.read_text().splitlines():
            waves.append(load_audio(str(manifest.parent / json.loads(line)["audio"]), 16000))
    t = Transcriber(model, threads=1, precision="int8", vad=False)
    assert t.model.rows_interact("encoder") and t.model.rows_interact("decoder") == (decoder == "int8")
    together = [r.text for r in t.transcribe(waves)]
    assert together == [t.transcribe([w])[0].text for w in waves]
    assert together == [r.text for r in t.transcribe(waves[::-1])][::-1]  # another order, other neighbours
