"""`kdasr curves` on a tiny run and a branch of it (real checkpoints, real tokenizer, real dev audio):
one CSV row per epoch checkpoint whose CTC WER and loss equal the trainer's own dev evaluation at
that step, a per-checkpoint cache (a second run decodes only new checkpoints), a PNG plot, and a
bad checkpoint reported in one line while the others are still written."""

from __future__ import annotations

import csv

import pytest
from conftest import run_kdasr

from kdasr.training.checkpoint import load_checkpoint
from kdasr.training.presets import read_preset
from kdasr.training.recipe import run_training
from kdasr.training.request import TrainRun

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(corpus, feats, out, **kw):
    run = TrainRun(corpus / "train.jsonl", corpus / "dev.jsonl", corpus / "tokenizer.model", out, config="tiny",
                   feature_cache=feats, threads=1, **kw)
    return run_training(run, read_preset(run.config))


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_curves_csv_cache_and_plot(tiny_corpus, tmp_path):
    feats = tmp_path / "feats"
    src, branch = tmp_path / "runs" / "base", tmp_path / "runs" / "branch"
    _train(tiny_corpus, feats, src, epochs=2)
    _train(tiny_corpus, feats, branch, epochs=2, branch_from=src / "epoch-1.pt")
    out, png = tmp_path / "report" / "curves.csv", tmp_path / "report" / "curves.png"
    # tiny.toml's max_frames and dev_utterances (20 > the tiny dev set): the trainer's own batches
    args = ["curves", str(src), str(branch), "--dev", str(tiny_corpus / "dev.jsonl"), "--limit", "20",
            "--feature-cache", str(feats), "--max-frames", "4000", "--threads", "1", "--no-progress",
            "--out", str(out), "--plot", str(png)]
    proc = run_kdasr(*args)
    assert "3 checkpoints (3 decoded now, 0 from the cache)" in proc.stdout
    rows = _rows(out)
    assert [(r["run"], r["epoch"]) for r in rows] == [("base", "1"), ("base", "2"), ("branch", "2")]
    for r in rows:
        ck = load_checkpoint(r["checkpoint"])
        assert int(r["step"]) == ck["step"] and 0 <= float(r["dev_wer_attention"]) and float(r["dev_loss"]) > 0
    # the trainer evaluated the same utterances at each epoch end: same CTC WER and loss
    dev_log = {int(r["step"]): r for r in _rows(src / "dev_log.csv")}
    for r in rows[:2]:
        logged = dev_log[int(r["step"])]
        assert float(r["dev_wer_ctc"]) == pytest.approx(float(logged["dev_ctc_wer"]), abs=1e-3)
        assert float(r["dev_loss"]) == pytest.approx(float(logged["dev_loss"]), rel=1e-4)
    # a --kd none branch is the source continued bit for bit: the same results at epoch 2
    keys = ("step", "dev_wer_attention", "dev_wer_ctc", "dev_loss")
    assert [rows[2][k] for k in keys] == [rows[1][k] for k in keys]
    assert rows[2]["branched_from"] == str(src / "epoch-1.pt") and rows[2]["branch_step"] == rows[0]["step"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # again: everything from the cache, the cache files untouched
    cache = sorted((src / "curves").glob("epoch-*.json")) + sorted((branch / "curves").glob("epoch-*.json"))
    assert len(cache) == 3
    stamps = [p.stat().st_mtime_ns for p in cache]
    proc = run_kdasr(*args)
    assert "3 checkpoints (0 decoded now, 3 from the cache)" in proc.stdout
    assert [p.stat().st_mtime_ns for p in cache] == stamps and _rows(out) == rows

    # one more epoch of the branch: only its new checkpoint is decoded; a broken checkpoint is
    # reported in one line (exit status 1) and the others are still written
    _train(tiny_corpus, feats, branch, epochs=3)
    (src / "epoch-7.pt").write_bytes(b"not a checkpoint")
    proc = run_kdasr(*args, check=False)
    assert proc.returncode == 1
    assert "4 checkpoints (1 decoded now, 3 from the cache)" in proc.stdout
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {src / 'epoch-7.pt'}: ")
    assert [(r["run"], r["epoch"]) for r in _rows(out)] == [("base", "1"), ("base", "2"), ("branch", "2"),
                                                            ("branch", "3")]
