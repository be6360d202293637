"""One source of decoding defaults: model.json carries the decoding the model was tuned for
(ModelSpec.decoding); transcribe / eval / the Python API decode with it unless a flag or an
option is given, and a given flag wins. Every recommendable field goes through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_kdasr, save_random_lm

from kdasr.runtime import DecodeOptions, Transcriber

# every search field a model can recommend, with non-default values (LM fusion and rescoring too)
RECOMMENDED = {"beam": 3, "nbest": 2, "ctc_weight": 0.4, "length_penalty": 0.5, "length_bonus": 0.25,
               "lm_weight": 0.3, "rescore": "lm", "rescore_weight": 0.7}
# other values for each, given as flags over the recommendation
OTHER = {"beam": 2, "nbest": 2, "ctc_weight": 0.1, "length_penalty": 0.0, "length_bonus": 1.0,
         "lm_weight": 0.0, "rescore": "none", "rescore_weight": 0.3}


def _flags(values: dict) -> list[str]:
    return [x for k, v in values.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def _ckpt(tiny_model: Path) -> str:
    return str(tiny_model.parent / "last.pt")


@pytest.fixture(scope="module")
def with_lm(tiny_model, tmp_path_factory):
    """(a model exported with RECOMMENDED, the plain tiny model): both with the same random tiny LM."""
    from kdasr.text import Tokenizer

    root = tmp_path_factory.mktemp("recommending")
    tok = Tokenizer(tiny_model / "tokenizer.model")
    save_random_lm(tok, root / "lm", d_model=32, layers=1)
    rec, plain = root / "rec", root / "plain"
    run_kdasr("export", _ckpt(tiny_model), "--out", str(rec), *_flags(RECOMMENDED))
    run_kdasr("export-lm", "--lm", str(root / "lm"), "--out", str(rec))
    shutil.copytree(tiny_model, plain)
    for name in ("lm.json", "lm.onnx"):
        shutil.copy(rec / name, plain / name)
    return rec, plain


def test_export_records_the_recommendation_and_the_api_uses_it(tiny_model, tiny_corpus, tmp_path):
    out = tmp_path / "m"
    run_kdasr("export", _ckpt(tiny_model), "--out", str(out), "--method", "ctc", "--beam", "3",
              "--ctc-weight", "0.4")
    info = json.loads((out / "model.json").read_text())
    assert info["format_version"] == 3 and info["decoding"] == {"method": "ctc", "beam": 3, "ctc_weight": 0.4}
    t = Transcriber(out, vad=False)
    assert t.model.spec.decoding == DecodeOptions(method="ctc", beam=3, ctc_weight=0.4)
    assert t.recommended_options(beam=1).beam == 1  # an explicit choice wins
    assert Transcriber(tiny_model, vad=False).model.spec.decoding == DecodeOptions()  # no recommendation: the defaults
    wav = str(sorted((tiny_corpus / "audio").rglob("*.flac"))[0])
    # transcribe() without options decodes as the model recommends
    assert t.transcribe([wav])[0].tokens == t.transcribe([wav], DecodeOptions(method="ctc"))[0].tokens
    bad = run_kdasr("export", _ckpt(tiny_model), "--out", str(tmp_path / "x"), "--ctc-weight", "1.5", check=False)
    assert bad.returncode != 0 and "ctc_weight" in bad.stderr
    # re-exporting the model dir itself (e.g. into a newer format) keeps its recommendation; flags go over it
    run_kdasr("export", str(out), "--out", str(tmp_path / "again"))
    assert json.loads((tmp_path / "again" / "model.json").read_text())["decoding"] == info["decoding"]
    run_kdasr("export", str(out), "--out", str(tmp_path / "beam5"), "--beam", "5")
    assert json.loads((tmp_path / "beam5" / "model.json").read_text())["decoding"] == {**info["decoding"], "beam": 5}


def test_eval_decodes_a_ctc_recommendation_with_ctc_unless_told(tiny_model, tiny_corpus, tmp_path):
    """The bug this fixes: `kdasr eval --method` defaulted to attention and overrode `export --method ctc`."""
    out = tmp_path / "m"
    run_kdasr("export", _ckpt(tiny_model), "--out", str(out), "--method", "ctc")
    manifest = str(tiny_corpus / "test.jsonl")

    def evaluate(model, *flags):
        name = f"r{len(list(tmp_path.glob('*.json')))}"
        run_kdasr("eval", "--model", str(model), "--manifest", manifest, "--limit", "3", "--threads", "1",
                  "--json", str(tmp_path / f"{name}.json"), "--hyps", str(tmp_path / f"{name}.jsonl"), *flags)
        hyps = [json.loads(x)["hyp"] for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        return json.loads((tmp_path / f"{name}.json").read_text())["decoding"]["method"], hyps

    rec = evaluate(out)
    assert rec == ("ctc", evaluate(tiny_model, "--method", "ctc")[1])
    assert evaluate(out, "--method", "attention") == ("attention", evaluate(tiny_model)[1])


def test_every_recommended_field_is_used_unless_a_flag_is_given(with_lm, tiny_corpus, tmp_path):
    rec, plain = with_lm
    assert json.loads((rec / "model.json").read_text())["decoding"] == RECOMMENDED
    wav = str(sorted((tiny_corpus / "audio").rglob("*.flac"))[0])

    def nbest(model, *flags):
        out = run_kdasr("transcribe", wav, "--model", str(model), "--format", "jsonl", "--no-vad", *flags).stdout
        return json.loads(out)["nbest"]

    recommended = nbest(rec)
    assert len(recommended) == 2 and recommended == nbest(plain, *_flags(RECOMMENDED))
    overridden = nbest(rec, *_flags(OTHER))
    assert overridden == nbest(plain, *_flags(OTHER))
    assert [n["score"] for n in overridden] != [n["score"] for n in recommended]  # the flags changed the search
    # eval: the decoding it records is the recommendation, field by field, and flags win
    manifest = str(tiny_corpus / "test.jsonl")
    args = ["eval", "--manifest", manifest, "--limit", "1", "--threads", "1", "--model", str(rec), "--json"]
    run_kdasr(*args, str(tmp_path / "a.json"))
    other = {k: v for k, v in OTHER.items() if k != "nbest"}  # eval has no --nbest (it scores the best)
    run_kdasr(*args, str(tmp_path / "b.json"), *_flags(other))
    for name, want in (("a", RECOMMENDED), ("b", {**other, "nbest": RECOMMENDED["nbest"]})):
        used = json.loads((tmp_path / f"{name}.json").read_text())["decoding"]
        assert {k: used[k] for k in want} == want
    # the Python API: transcribe() without options is the recommendation
    got = Transcriber(rec, vad=False).transcribe([wav])[0]
    assert [round(n.score, 4) for n in got.nbest] == [n["score"] for n in recommended]
