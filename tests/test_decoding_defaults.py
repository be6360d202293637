"""model.json carries the decoding the model was tuned for; transcribe/eval use it unless told."""

from __future__ import annotations

import json

from conftest import run_kdasr

from kdasr.runtime import Transcriber


def test_export_records_recommended_decoding_and_runtime_uses_it(tiny_model, tmp_path):
    out = tmp_path / "m"
    run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(out), "--method", "ctc", "--beam", "3",
              "--ctc-weight", "0.4")
    assert json.loads((out / "model.json").read_text())["decoding"] == {"method": "ctc", "beam": 3, "ctc_weight": 0.4}
    t = Transcriber(out)
    opts = t.recommended_options()
    assert (opts.method, opts.beam, opts.ctc_weight) == ("ctc", 3, 0.4)
    assert t.recommended_options(beam=1).beam == 1  # an explicit choice wins
    plain = Transcriber(tiny_model).recommended_options()
    assert (plain.beam, plain.ctc_weight) == (1, 0.0)  # no recommendation: greedy


def test_cli_flags_override_the_recommendation(tiny_model, tiny_corpus, tmp_path):
    out = tmp_path / "m"
    run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(out), "--beam", "2", "--ctc-weight", "0.5")
    wav = sorted((tiny_corpus / "audio").rglob("*.flac"))[0]
    rec = run_kdasr("transcribe", str(wav), "--model", str(out), "--format", "jsonl").stdout
    greedy_here = run_kdasr("transcribe", str(wav), "--model", str(out), "--beam", "1", "--ctc-weight", "0",
                            "--format", "jsonl").stdout
    greedy_plain = run_kdasr("transcribe", str(wav), "--model", str(tiny_model), "--format", "jsonl").stdout
    beam_plain = run_kdasr("transcribe", str(wav), "--model", str(tiny_model), "--beam", "2", "--ctc-weight", "0.5",
                           "--format", "jsonl").stdout
    text = [json.loads(x)["text"] for x in (rec, greedy_here, greedy_plain, beam_plain)]
    assert text[0] == text[3]  # the recommendation is the same as passing it
    assert text[1] == text[2]  # flags override it
    bad = run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(tmp_path / "x"), "--ctc-weight", "1.5",
                    check=False)
    assert bad.returncode != 0 and "ctc_weight" in bad.stderr
