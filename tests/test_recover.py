"""Weights recovered from an exported model dir equal the checkpoint's; `train --init-from` uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_kdasr

from kdasr.errors import ModelError
from kdasr.models.onnx_weights import load_student_from_model_dir
from kdasr.training.checkpoint import load_checkpoint


def test_recovered_weights_equal_the_checkpoint(tiny_model):
    model, tok, meta = load_student_from_model_dir(tiny_model)
    ck = load_checkpoint(tiny_model.parent / "last.pt")
    state = model.state_dict()
    assert set(state) == set(ck["model"])
    for key, value in ck["model"].items():
        assert torch.allclose(state[key], value, atol=0, rtol=0), key
    assert tok.model_bytes == ck["tokenizer_model"]


def test_shipped_model_is_recoverable():
    model, _, meta = load_student_from_model_dir(Path(__file__).resolve().parents[1] / "export" / "demo-en-small")
    assert sum(p.numel() for p in model.parameters()) == meta.training["parameters"]


def test_a_dir_without_model_json_is_refused(tmp_path):
    # (also through the one student loader that training, export and the torch engine use)
    from kdasr.models.student_io import load_student

    with pytest.raises(ModelError, match="model.json"):
        load_student(tmp_path)
    with pytest.raises(ModelError, match="model.json"):
        load_student_from_model_dir(tmp_path)


def test_train_init_from_model_dir_starts_from_its_weights(tiny_corpus, tiny_model, tmp_path):
    args = ["--train", str(tiny_corpus / "train.jsonl"), "--dev", str(tiny_corpus / "dev.jsonl")]
    args += ["--config", "tiny", "--threads", "1", "--feature-cache", str(tmp_path / "feats")]
    run_kdasr("train", *args, "--tokenizer", str(tiny_corpus / "tokenizer.model"), "--out", str(tmp_path / "ft"),
              "--init-from", str(tiny_model), "--max-steps", "1", "--lr", "1e-9", "--warmup-steps", "1")
    before = load_checkpoint(tiny_model.parent / "last.pt")["model"]
    after = load_checkpoint(tmp_path / "ft" / "last.pt")
    source = after["summary"]["initialised_from"]
    assert source["path"] == str(tiny_model) and source["training"]["steps"] == 6  # the source's history
    assert after["step"] == 1  # a fresh schedule, not the source's
    # one step at a negligible learning rate: still the source's weights, not a fresh init
    diffs = [float((after["model"][k] - v).abs().max()) for k, v in before.items() if v.is_floating_point()]
    assert max(diffs) < 1e-5
    # resuming keeps the run's history (start time, source) even without --init-from
    run_kdasr("train", *args, "--tokenizer", str(tiny_corpus / "tokenizer.model"), "--out", str(tmp_path / "ft"),
              "--max-steps", "2", "--lr", "1e-9", "--warmup-steps", "1")
    resumed = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert resumed["step"] == 2
    assert resumed["summary"]["initialised_from"] == source
    assert resumed["summary"]["started"] == after["summary"]["started"]
    # another tokenizer is refused, naming the source
    from kdasr.text import train_tokenizer

    text = tmp_path / "other.txt"  # 3000 lines: any other tokenizer will do (all 59k took ~5 s more)
    text.write_text("".join((tiny_corpus / "teacher.txt").read_text().splitlines(keepends=True)[:3000]))
    train_tokenizer([text], tmp_path / "other", vocab_size=50)
    proc = run_kdasr("train", *args, "--tokenizer", str(tmp_path / "other.model"), "--out", str(tmp_path / "ft2"),
                     "--init-from", str(tiny_model), "--max-steps", "1", check=False)
    assert proc.returncode != 0
    assert "another tokenizer" in proc.stderr


def test_train_init_encoder_from_takes_the_encoder_and_ctc_head_only(tiny_corpus, tiny_model, tmp_path):
    """--init-encoder-from: a Transformer-decoder student on the tiny LSTM model's encoder (the decoder
    comparison of issue 11 item 3 starts both decoders on one trained encoder)."""
    args = ["--train", str(tiny_corpus / "train.jsonl"), "--dev", str(tiny_corpus / "dev.jsonl"),
            "--tokenizer", str(tiny_corpus / "tokenizer.model"), "--threads", "1",
            "--feature-cache", str(tmp_path / "feats"), "--max-steps", "1", "--lr", "1e-9", "--warmup-steps", "1"]
    run_kdasr("train", *args, "--config", "tiny-transformer", "--out", str(tmp_path / "tf"),
              "--init-encoder-from", str(tiny_model))
    source = load_checkpoint(tiny_model.parent / "last.pt")["model"]
    after = load_checkpoint(tmp_path / "tf" / "last.pt")
    assert after["summary"]["encoder_initialised_from"]["path"] == str(tiny_model)
    taken = [k for k in after["model"] if k.startswith(("encoder.", "ctc_head."))]
    assert taken and all(float((after["model"][k] - source[k]).abs().max()) < 1e-5 for k in taken)
    shared = [k for k, v in after["model"].items() if k.startswith("decoder.") and k in source
              and source[k].shape == v.shape]  # e.g. the token embedding: fresh, not the source's
    assert all(not torch.allclose(after["model"][k], source[k], atol=1e-3) for k in shared)
    # an encoder of another shape is refused in one line; and it excludes --init-from
    other = run_kdasr("train", *args, "--config", "demo", "--out", str(tmp_path / "bad"),
                      "--init-encoder-from", str(tiny_model), check=False)
    assert other.returncode != 0 and "its encoder is not this config's" in other.stderr, other.stderr
    both = run_kdasr("train", *args, "--config", "tiny", "--out", str(tmp_path / "both"),
                     "--init-encoder-from", str(tiny_model), "--init-from", str(tiny_model), check=False)
    assert both.returncode != 0 and "exclude each other" in both.stderr and "Traceback" not in both.stderr


def test_export_check_fails_when_a_parameter_cannot_be_read_back(tiny_model, tmp_path):
    """export --check reads the torch student back from the dir it wrote. A graph that folds a
    parameter into an anonymous constant (here the embedding, scaled by 1 before its lookup)
    computes the same values, so it passes the graph parity, but fails the read-back: an export
    that would break train --init-from DIR is caught when it is made."""
    from kdasr.export.check import check_model_dir
    from kdasr.export.model_dir import write_model_dir
    from kdasr.export.onnx_export import export_student

    model, tok, _ = load_student_from_model_dir(tiny_model)
    checks = {c.graph: c for c in check_model_dir(model, tiny_model)}
    assert checks["weights read back"].max_error == 0.0

    embed = model.decoder.embed
    embed.forward = lambda t: torch.nn.functional.embedding(t, embed.weight * 1.0)
    export_student(model, tmp_path)
    write_model_dir(tmp_path, model.cfg, tok, {}, {})
    checks = {c.graph: c for c in check_model_dir(model, tmp_path)}
    assert checks["decoder"].ok(1e-4) and checks["encoder"].ok(1e-4)
    assert not checks["weights read back"].ok(1e-4)
    assert "decoder.embed.weight" in checks["weights read back"].detail  # the failure names what is lost
