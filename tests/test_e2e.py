"""The walking skeleton end to end through the CLI: synth -> tokenizer -> train -> export -> transcribe -> eval."""

from __future__ import annotations

import json

from conftest import run_kdasr

from kdasr.data.manifest import read_manifest


def test_train_writes_checkpoint_and_loss_log(tiny_model):
    exp = tiny_model.parent
    assert (exp / "last.pt").is_file()
    rows = (exp / "train_log.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss")
    assert len(rows) >= 1 + 6  # log_every=1 in the tiny config: one row per step
    assert all(float(r.split(",")[2]) > 0 for r in rows[1:])


def test_model_dir_follows_contract(tiny_model):
    info = json.loads((tiny_model / "model.json").read_text())
    for f in ("encoder.onnx", "decoder.onnx", "tokenizer.model"):
        assert (tiny_model / f).is_file()
    assert info["sample_rate"] == 16000 and info["vocab_size"] == 60
    assert info["special_ids"]["eos"] == 3
    assert info["training"]["steps"] == 6


def test_export_check_reports_small_error(tiny_model):
    # the session fixture's own `kdasr export --check` (not a second export of the same checkpoint)
    stdout = (tiny_model.parent / "export-check.txt").read_text()
    lines = [line for line in stdout.splitlines() if line.startswith("check")]
    assert [line.split(":")[0] for line in lines] == ["check encoder", "check decoder", "check weights read back"]
    for line in lines:
        err = float(line.split("=")[1].split()[0])
        assert err < 1e-4 and "ok" in line


def test_export_check_fails_with_impossible_tolerance(tiny_model, tmp_path):
    proc = run_kdasr(
        "export",
        str(tiny_model.parent / "last.pt"),
        "--out",
        str(tmp_path / "m"),
        "--check",
        "--tolerance",
        "0",
        check=False,
    )
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def test_transcribe_text_and_jsonl(tiny_corpus, tiny_model):
    utts = read_manifest(tiny_corpus / "test.jsonl")[:3]
    paths = [u.audio for u in utts]
    text = run_kdasr("transcribe", *paths, "--model", str(tiny_model)).stdout.splitlines()
    assert [line.split("\t")[0] for line in text] == paths
    rows = [
        json.loads(x)
        for x in run_kdasr("transcribe", *paths, "--model", str(tiny_model), "--format", "jsonl").stdout.splitlines()
    ]
    assert [r["path"] for r in rows] == paths
    assert all(abs(r["duration"] - u.duration) < 0.05 for r, u in zip(rows, utts))


def test_eval_prints_wer_and_writes_hyps(tiny_corpus, tiny_model, tmp_path):
    hyps = tmp_path / "hyps.jsonl"
    proc = run_kdasr(
        "eval", "--model", str(tiny_model), "--manifest", str(tiny_corpus / "test_heldout.jsonl"), "--hyps", str(hyps)
    )
    assert "WER" in proc.stdout and "CER" in proc.stdout
    rows = [json.loads(x) for x in hyps.read_text().splitlines()]
    assert len(rows) == len(read_manifest(tiny_corpus / "test_heldout.jsonl"))
    assert all("ref" in r and "hyp" in r for r in rows)
