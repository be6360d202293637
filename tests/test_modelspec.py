"""ModelSpec, the model-dir contract: format 1 (export/demo-en-v1, shipped before the paper run) and
formats 2-3 parse into the same typed objects, what export writes round-trips through model.json and
ONNX metadata_props, and the runtime checks the real graphs against it with one line naming the file
and the mismatch."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from kdasr.errors import ModelError
from kdasr.runtime import DecodeOptions, Transcriber
from kdasr.runtime.search.scorers import initial_state
from kdasr.spec.graph_spec import BATCH, FORMAT_VERSION, FRAMES, STEPS, StateTensor
from kdasr.spec.modelspec import ModelSpec, load_model_spec

V1 = Path(__file__).resolve().parents[1] / "export" / "demo-en-v1"  # shipped before the paper run, format 1
SAMPLE = Path(__file__).resolve().parents[1] / "eval" / "samples"


def _v2_copy(tmp_path: Path) -> tuple[Path, ModelSpec]:
    """demo-en-v1 with its format-1 model.json rewritten in today's format by the export writer."""
    from kdasr.export.model_dir import write_model_json

    d = tmp_path / "v2"
    shutil.copytree(V1, d)
    return d, write_model_json(d, load_model_spec(V1))


def test_format_1_parses_into_the_spec():
    spec = load_model_spec(V1)
    assert spec.format_version == 1 and spec.sample_rate == 16000 and spec.vocab_size == 256
    assert (spec.special_ids.bos, spec.special_ids.eos, spec.special_ids.blank) == (2, 3, 0)
    assert spec.decoding == DecodeOptions(beam=10, ctc_weight=0.2)
    assert [(s.name, s.output, s.shape, s.init) for s in spec.decoder.state] == [
        ("h", "h_out", (BATCH, 320), "zeros"), ("c", "c_out", (BATCH, 320), "zeros"),
        ("context", "context_out", (BATCH, 144), "zeros"),
        ("attention", "attention_out", (BATCH, FRAMES), "uniform_frames"),
    ]
    assert [(m.name, m.source) for m in spec.decoder.memory] == [
        ("memory", "memory"), ("memory_keys", "memory_keys"), ("memory_lens", "memory_lens")]
    assert spec.graphs["encoder"].files == {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx"}


def test_todays_format_round_trips_through_model_json_and_onnx_metadata(tmp_path):
    d, spec = _v2_copy(tmp_path)
    again = load_model_spec(d)
    assert again.format_version == FORMAT_VERSION
    assert again == replace(load_model_spec(V1), format_version=FORMAT_VERSION) == spec
    for file in ("encoder.onnx", "decoder.int8.onnx"):  # every graph file, variants too, carries the spec
        props = ort.InferenceSession(str(d / file), providers=["CPUExecutionProvider"]).get_modelmeta()
        assert ModelSpec.from_metadata(props.custom_metadata_map, file) == spec
    # the same decoding, the same n-best: the format changes nothing the runtime does
    wav = str(SAMPLE / json.loads((SAMPLE / "manifest.jsonl").read_text().splitlines()[0])["audio"])
    opts = DecodeOptions(beam=3, nbest=3, ctc_weight=0.2)
    a, b = (Transcriber(m, threads=1, vad=False).transcribe([wav], opts)[0] for m in (V1, d))
    assert [(n.tokens, n.score) for n in a.nbest] == [(n.tokens, n.score) for n in b.nbest]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format_version=4), "format_version 4: this kdasr reads format 1-3 (upgrade kdasr)"),
        (lambda d: d.update(format_version=0), "re-export it with `kdasr export"),
        (lambda d: d["decoder_io"]["state"][0].pop("output"), "h: a state tensor needs the name of its output"),
        (lambda d: d["decoder_io"]["state"][3].update(init="ones"), "attention: init must be one of"),
        (lambda d: d["decoder_io"]["state"][0].update(shape=[320]), "exactly one 'batch' dim"),
        (lambda d: d["decoder_io"]["memory"][0].update(shape=["utterances", "batch", 144]),
         "memory: shape ['utterances', 'batch', 144] must have exactly one 'batch' or 'utterances' dim"),
        (lambda d: d["graphs"]["decoder"]["inputs"].remove("c"), "are not tokens + state + memory"),
        (lambda d: d["decoder_io"]["memory"][1].update(source="keys"), "from encoder output 'keys'"),
        (lambda d: d["encoder_io"].update(ctc_logprobs="ctc"), "encoder_io.ctc_logprobs 'ctc' is not among"),
        (lambda d: d["decoding"].update(beems=4), "decoding: beems not a decoding option"),
        (lambda d: d["decoding"].update(beam=0), "decoding: beam must be within [1, 1000], not 0"),
        (lambda d: d["special_ids"].update(eos=999), "special_ids.eos must be a token id below vocab_size"),
    ],
)
def test_bad_specs_are_one_line_naming_the_file(tmp_path, edit, message):
    d = load_model_spec(V1).to_dict()
    edit(d)
    with pytest.raises(ModelError) as e:
        ModelSpec.from_dict(json.loads(json.dumps(d)), "x/model.json")
    assert str(e.value).startswith("x/model.json") and message in str(e.value) and "\n" not in str(e.value)


def test_the_runtime_checks_the_graphs_against_the_spec(tmp_path):
    d, spec = _v2_copy(tmp_path)
    info = spec.to_dict()
    info["decoder_io"]["state"][0]["shape"] = [BATCH, 321]  # not what decoder.onnx takes
    (d / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match=r"decoder\.onnx: input h is tensor\(float\) \['batch', 320\], the model "
                                         r"spec says float32 \['batch', 321\]"):
        Transcriber(d, vad=False)


def test_state_tensors_start_as_declared_for_lstm_and_kv_cache_layouts():
    lens = np.array([3, 5])
    uniform = initial_state(StateTensor("a", (BATCH, FRAMES), output="a_out", init="uniform_frames"), 2, lens, 6)
    np.testing.assert_allclose(uniform, [[1 / 3] * 3 + [0] * 3, [0.2] * 5 + [0]])
    # a Transformer decoder's self-attention cache per layer: [N, H, steps, dh], empty at the start
    kv = initial_state(StateTensor("self_k_0", (BATCH, 4, STEPS, 8), output="self_k_0_out"), 2, lens, 6)
    assert kv.shape == (2, 4, 0, 8) and kv.dtype == np.float32
    # batch need not be the first axis (the LM's cache is [L, 2, N, H, steps, dh])
    lm = initial_state(StateTensor("cache", (2, 2, BATCH, 4, STEPS, 8), output="cache_out"), 3, lens, 6)
    assert lm.shape == (2, 2, 3, 4, 0, 8)


def test_format_1_teacher_descriptions_still_parse():
    from kdasr.spec.teacher_spec import BertSpec, LMSpec

    ids = {"pad": 0, "bos": 2, "eos": 3, "mask": 4}
    lm = LMSpec.from_dict({"format_version": 1, "kind": "lm", "vocab_size": 60, "special_ids": ids,
                           "graphs": {"lm": {"file": "lm.onnx", "inputs": ["tokens", "cache"],
                                             "outputs": ["logprobs", "cache_out"], "int8": "lm.int8.onnx"}},
                           "cache": [2, 2, "batch", 4, "past", 8], "max_len": 128, "config": {}}, "lm.json")
    assert lm.state == (StateTensor("cache", (2, 2, BATCH, 4, STEPS, 8), output="cache_out"),)
    assert lm.graph.files["int8"] == "lm.int8.onnx" and lm.special_ids.blank == 0
    graph = {"file": "bert.onnx", "inputs": ["input_ids", "attention_mask", "positions", "targets"],
             "outputs": ["token_logprobs"]}
    bert = BertSpec.from_dict({"format_version": 1, "kind": "bert", "vocab_size": 60, "special_ids": ids,
                               "graphs": {"bert": graph}, "window": 64, "mask_id": 4}, "bert.json")
    assert (bert.window, bert.mask_id, bert.token_logprobs) == (64, 4, "token_logprobs")
    again = BertSpec.from_dict(json.loads(json.dumps(bert.to_dict())), "b")
    assert again == replace(bert, format_version=FORMAT_VERSION)
    with pytest.raises(ModelError, match="lm.json: graphs.lm: inputs must be a list of tensor names"):
        LMSpec.from_dict({**lm.to_dict(), "graphs": {"lm": {"file": "lm.onnx", "inputs": "tokens"}}}, "lm.json")
