"""Seeds and smoothing as training flags (issue 28 items 1-2): `--seed` sets the trainable weights'
initialisation and the data order, `--label-smoothing` / `--kd-smoothing` set the two targets' ε and
σ; all three land in the checkpoint's train_config and a resume with other values is refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import typer

from kdasr.cli import app
from kdasr.errors import KdasrError
from kdasr.training.batching import bucket_batches
from kdasr.training.checkpoint import TrainingCheckpoint
from kdasr.training.presets import load_preset, read_preset
from kdasr.training.request import TrainRun
from kdasr.training.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_worker import WORDS, examples, tokenizer  # noqa: E402

RUN = dict(train_manifest="t.jsonl", dev_manifest="d.jsonl", tokenizer="tok.model", out="exp")
MAX_FRAMES = 600  # several batches of the 16 synthetic utterances: the order has something to shuffle


def test_flags_set_the_train_config_and_are_checked():
    cmd = typer.main.get_command(app).commands["train"]
    required = ["--train", "t.jsonl", "--dev", "d.jsonl", "--tokenizer", "tok.model", "-o", "exp"]
    base = read_preset("tiny").train
    run = TrainRun(**cmd.make_context("train", [*required, "--seed", "3", "--label-smoothing", "0",
                                                "--kd-smoothing", "0.25"]).params)
    cfg = run.train_config(base)
    assert (cfg.seed, cfg.label_smoothing, cfg.kd_smoothing) == (3, 0.0, 0.25)  # 0 is a value, not "not given"
    saved = cfg.to_dict()
    assert (saved["seed"], saved["label_smoothing"], saved["kd_smoothing"]) == (3, 0.0, 0.25)
    plain = TrainRun(**cmd.make_context("train", required).params).train_config(base)
    assert (plain.seed, plain.label_smoothing, plain.kd_smoothing) == (base.seed, base.label_smoothing,
                                                                        base.kd_smoothing)
    for kw, message in [
        ({"label_smoothing": 1.0}, "--label-smoothing 1.0: must be at least 0 and below 1"),
        ({"kd_smoothing": -0.1}, "--kd-smoothing -0.1: must be at least 0 and below 1"),
        ({"kd_smoothing": float("nan")}, "--kd-smoothing nan: must be at least 0 and below 1"),
        ({"seed": -1}, "--seed -1: must be a whole number, 0 or more"),
    ]:
        with pytest.raises(KdasrError, match=message):
            TrainRun(**RUN, **kw)


@pytest.mark.slow
def test_a_bad_smoothing_flag_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kdasr", "train", "--train", "t.jsonl", "--dev", "d.jsonl", "--tokenizer", "t.model",
         "--out", str(tmp_path / "x"), "--label-smoothing", "1.5"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --label-smoothing 1.5: must be at least 0 and below 1"
    assert not (tmp_path / "x").exists()


def _train(tok, out: Path, seed: int, lr: float, steps: int, dropout: float = 0.1,
           init: dict | None = None) -> dict[str, torch.Tensor]:
    model_cfg, cfg = load_preset("tiny", tok.vocab_size)
    model_cfg = dataclasses.replace(model_cfg, dropout=dropout)
    cfg = dataclasses.replace(cfg, seed=seed, lr=lr, max_steps=steps, max_frames=MAX_FRAMES, threads=1,
                              specaug_start_step=10**9, checkpoint_minutes=1e9, dev_utterances=2)
    train(model_cfg, cfg, examples(tok, 16, 1), examples(tok, 2, 2), tok, out, init_weights=init)
    ck = TrainingCheckpoint.load(out / "last.pt")
    assert ck.train_config["seed"] == seed and ck.step == steps
    return ck.model


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # several trainings (seconds each on a busy machine)
def test_the_seed_sets_the_initial_weights(tmp_path, one_thread):
    """lr 0: Adam moves nothing, so the checkpoint holds the weights the trainer initialised."""
    tok = tokenizer(tmp_path / "tok")
    a, again, b = (_train(tok, tmp_path / name, seed, lr=0.0, steps=1)
                   for name, seed in (("a", 0), ("again", 0), ("b", 1)))
    assert _same(a, again)
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert len(differ) > len(a) // 2  # every randomly initialised tensor (biases and norms start fixed)


@pytest.mark.slow  # several trainings (seconds each on a busy machine)
def test_the_seed_sets_the_data_order(tmp_path, one_thread):
    """Same initial weights, no dropout, no SpecAugment: what a seed still changes is the batch order."""
    tok = tokenizer(tmp_path / "tok")
    lengths = [len(f) for f in examples(tok, 16, 1).feats]
    order = {s: bucket_batches(lengths, MAX_FRAMES, s, 0) for s in (0, 1)}
    assert len(order[0]) > 2 and order[0][0] != order[1][0]  # the first batch differs between the seeds
    init = _train(tok, tmp_path / "init", seed=5, lr=0.0, steps=1)
    runs = {name: _train(tok, tmp_path / name, seed, lr=2e-3, steps=2, dropout=0.0, init=init)
            for name, seed in (("a", 0), ("again", 0), ("b", 1))}
    assert _same(runs["a"], runs["again"])
    assert not _same(runs["a"], runs["b"]) and not _same(runs["a"], init)


def _tiny_manifest(folder: Path, n: int) -> Path:
    """Real wav files (noise) with short transcripts: enough for the trainer to take a step."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        wav = folder / f"u{i}.wav"
        sf.write(wav, (0.1 * rng.standard_normal(24000)).astype(np.float32), 16000)
        text = " ".join(rng.choice(WORDS, 3))
        lines.append(json.dumps({"id": f"u{i}", "audio": str(wav), "text": text, "duration": 1.5}))
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_the_cli_records_the_flags_and_a_resume_must_keep_them(tmp_path):
    tok = tokenizer(tmp_path / "tok")
    manifest = _tiny_manifest(tmp_path, 4)
    out = tmp_path / "exp"
    base = [sys.executable, "-m", "kdasr", "train", "--train", str(manifest), "--dev", str(manifest),
            "--tokenizer", str(tok.path), "--out", str(out), "--config", "tiny", "--threads", "1"]
    flags = ["--seed", "7", "--label-smoothing", "0.2", "--kd-smoothing", "0.05"]
    proc = subprocess.run([*base, *flags, "--max-steps", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    saved = TrainingCheckpoint.load(out / "last.pt").train_config
    assert (saved["seed"], saved["label_smoothing"], saved["kd_smoothing"]) == (7, 0.2, 0.05)
    proc = subprocess.run([*base, "--seed", "8", "--label-smoothing", "0.2", "--kd-smoothing", "0.05",
                           "--max-steps", "2"], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"error: {out / 'last.pt'}: cannot resume: its training settings differ (checkpoint vs now: seed 7 vs 8); "
        "resume with --seed 7 --label-smoothing 0.2 --kd-smoothing 0.05, or start over with --no-resume or "
        "another --out"
    )
