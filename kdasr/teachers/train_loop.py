"""The teachers' training loop: AdamW with warmup, clipping, a budget in steps and/or minutes,
a CSV log, and atomic checkpoints that a re-run of the same command resumes from (also after
SIGKILL).

Schedule ("warmup-stable-decay"): linear warmup, constant peak, then a linear decay to 10 % of the
peak over the last `decay_frac` of the budget. Progress is max(step / steps, elapsed / minutes), so
with `--minutes` the decay starts when the *time* is nearly spent, whatever the step rate turned
out to be on a shared machine: the schedule is planned over the steps the run really makes
(a cosine planned for `steps` and cut by the clock would stop part-way at a high rate). Elapsed
time is summed over resumed runs, so a killed run keeps its place in the schedule.

Files in `state_dir`: `train_state.pt` (model + optimizer + rng states + progress; plain tensors
and data only, loaded with weights_only) and `train_log.csv` (step, elapsed_s, lr, loss,
loss_ema, dev_loss)."""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import KdasrError
from ..io_utils import atomic_write_text, remove_orphan_temps
from ..models.torch_files import load_torch_file, save_torch_file
from .common import TeacherTrainConfig

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.csv"
LOG_COLUMNS = ["step", "elapsed_s", "lr", "loss", "loss_ema", "dev_loss"]


def amp_context(amp: str, device: torch.device | str = "cpu"):
    """bf16 autocast when amp == "bf16" (matmuls in bf16, weights stay fp32), else a no-op: the teachers'
    training and their soft labels share it. ~2x on CPUs with AMX, slower where bf16 is emulated."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp == "bf16")


def device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are: the teachers' batches are built on the CPU and moved there."""
    return next(model.parameters()).device


def progress_of(step: int, elapsed: float, cfg: TeacherTrainConfig) -> float:
    """How much of the budget is spent, 0..1 (steps or minutes, whichever is further along)."""
    p = step / max(1, cfg.steps)
    if cfg.minutes is not None:
        p = max(p, elapsed / max(1e-9, cfg.minutes * 60))
    return p


def lr_at(step: int, progress: float, cfg: TeacherTrainConfig) -> float:
    """Warmup (by steps), constant peak, then linear decay to 10 % over the last decay_frac."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    into_decay = (progress - (1.0 - cfg.decay_frac)) / max(cfg.decay_frac, 1e-9)
    return cfg.lr * (1.0 - 0.9 * min(1.0, max(0.0, into_decay)))


def _read_log(path: Path, upto_step: int) -> list[list[str]]:
    """Rows of an existing log up to the checkpoint's step (later ones are redone after resume)."""
    if not path.is_file():
        return []
    rows = list(csv.reader(path.read_text().splitlines()))
    return [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= upto_step]


def _write_log(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _save_state(path: Path, model, opt, rng: random.Random, step: int, elapsed: float, ema, identity: dict) -> None:
    save_torch_file(
        path,
        {
            "kind": "kdasr-teacher-train-state",
            "identity": identity,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "python_rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            # dropout on a GPU draws from the device's generator: kept so a resume repeats the masks
            "cuda_rng": torch.cuda.get_rng_state(device_of(model)) if device_of(model).type == "cuda" else None,
            "step": step,
            "elapsed": elapsed,
            "ema": ema,
        },
    )


def _load_state(path: Path, model, opt, rng: random.Random, identity: dict) -> tuple[int, float, float | None]:
    state = load_torch_file(path, "teacher training state")
    if state.get("kind") != "kdasr-teacher-train-state":
        raise KdasrError(f"{path}: not a kdasr teacher training state")
    if state.get("identity") != identity:
        theirs = state.get("identity") or {}
        diff = sorted(k for k in set(theirs) | set(identity) if theirs.get(k) != identity.get(k))
        raise KdasrError(
            f"{path}: was written by a run with other settings ({', '.join(diff)}); "
            f"use another --out or delete it to start over"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    version, internal, gauss = state["python_rng"]
    rng.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and device_of(model).type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device_of(model))
    return int(state["step"]), float(state["elapsed"]), state["ema"]


def train_steps(
    model: torch.nn.Module,
    next_loss: Callable[[int], torch.Tensor],
    cfg: TeacherTrainConfig,
    desc: str,
    rng: random.Random,
    state_dir: Path | None = None,
    identity: dict | None = None,
    dev_loss: Callable[[], float] | None = None,
) -> dict:
    """Train on cfg.device until the budget (cfg.steps and/or cfg.minutes) is spent; resume from
    state_dir's checkpoint if one is there (next_loss and dev_loss move their batches to the model's
    device). `rng` drives the data (its state is checkpointed); `identity`
    (the settings that must not change across a resume) is stored and compared."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    identity = identity or {}  # the device is not part of it: a run may resume on another one
    model.to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, elapsed, ema = 0, 0.0, None
    state_path = log_path = None
    rows: list[list[str]] = []
    if state_dir is not None:
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        state_path, log_path = state_dir / STATE_FILE, state_dir / LOG_FILE
        remove_orphan_temps(state_dir, {STATE_FILE, LOG_FILE}.__contains__)  # a killed save's temp files
        if state_path.is_file():
            step, elapsed, ema = _load_state(state_path, model, opt, rng, identity)
        rows = _read_log(log_path, step)
    resumed_from = step
    last_save = time.time()
    t_start = time.time() - elapsed  # elapsed counts every run of this training
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    ]

    def save() -> None:
        if state_path is not None:
            _save_state(state_path, model, opt, rng, step, time.time() - t_start, ema, identity)
            _write_log(log_path, rows)

    model.train()
    with Progress(*columns) as bar:
        task = bar.add_task(desc, total=cfg.steps, completed=step, info="")
        while progress_of(step, time.time() - t_start, cfg) < 1.0:
            lr = lr_at(step, progress_of(step, time.time() - t_start, cfg), cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            with amp_context(cfg.amp, cfg.device):
                loss = next_loss(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            value = float(loss.detach())
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            if step % cfg.log_every == 0:
                dev = ""
                if dev_loss is not None and cfg.eval_every and step % cfg.eval_every == 0:
                    model.eval()
                    dev = f"{dev_loss():.4f}"
                    model.train()
                rows.append([str(step), f"{time.time() - t_start:.1f}", f"{lr:.3g}", f"{value:.4f}", f"{ema:.4f}", dev])
                bar.update(task, info=f"loss {ema:.3f}" + (f" dev {dev}" if dev else ""))
                if log_path is not None and time.time() - last_save < cfg.save_every_s:
                    _write_log(log_path, rows)
            bar.update(task, completed=step)
            if time.time() - last_save >= cfg.save_every_s:
                save()
                last_save = time.time()
    save()
    model.eval()
    return {
        "steps": step,
        "resumed_from_step": resumed_from,
        "train_seconds": round(time.time() - t_start, 1),
        "final_loss_ema": round(ema or 0.0, 4),
        "amp": cfg.amp,
        "device": str(cfg.device),
        "schedule": f"warmup {cfg.warmup_steps} steps, constant {cfg.lr:g}, linear decay to 10% over the last "
        f"{cfg.decay_frac:.0%} of the budget",
    }
