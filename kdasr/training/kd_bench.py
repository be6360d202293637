"""The KD training step's cost against the baseline step, for `kdasr teacher bench` (which passes
this in, so the teachers stage does not import training; the CLI reads the preset)."""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from ..models.student import build_model
from ..teachers.bench_records import BASELINE_STEP, KdStepTimes
from ..teachers.kd_mode import KdMode
from ..text import Tokenizer
from .data import Batch
from .presets import Preset
from .trainer import compute_loss


def bench_kd_step(
    tok: Tokenizer, preset: Preset, steps: int = 5, batch: int = 8, frames: int = 800, units: int = 30
) -> KdStepTimes:
    """Median seconds of one training step (forward + backward + Adam) on a synthetic batch with
    soft labels, per variant: CE baseline, KD (BERT, λ=0.1), baseline under bf16 autocast; the
    record keeps the batch's shape (the report's heading quotes it)."""
    model_cfg, base = preset.model_config(tok.vocab_size), preset.train
    g = torch.Generator().manual_seed(0)
    tin = torch.randint(5, tok.vocab_size, (batch, units + 1), generator=g)
    b = Batch(
        torch.randn(batch, frames, model_cfg.n_mels, generator=g),
        torch.full((batch,), frames),
        tin,
        tin.clone(),
        tin[:, 1:].clone(),
        torch.full((batch,), units),
        torch.randint(5, tok.vocab_size, (batch, units + 1, 8), generator=g),
        torch.softmax(torch.randn(batch, units + 1, 8, generator=g), -1),
        torch.ones(batch, units + 1, dtype=torch.bool),
    )
    variants = {
        BASELINE_STEP: dataclasses.replace(base, kd=KdMode.NONE),
        "KD (bert, λ=0.1)": dataclasses.replace(base, kd=KdMode.BERT, kd_weight=0.1),
        "baseline, bf16 autocast": dataclasses.replace(base, kd=KdMode.NONE, amp="bf16"),
    }
    torch.manual_seed(0)
    model = build_model(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(steps + 1):  # interleaved so load changes hit every variant alike; first round is warm-up
        for name, cfg in variants.items():
            t0 = time.perf_counter()
            loss = compute_loss(model, b, tok, cfg)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times[name].append(time.perf_counter() - t0)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return KdStepTimes(preset.name, batch, frames, units, steps, medians, BASELINE_STEP)
