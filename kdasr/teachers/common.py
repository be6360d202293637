"""What both teachers share: reading the teacher text, and a small training loop with warmup,
clipping, a wall-clock budget and a progress bar."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import KdasrError, TextError
from ..text import normalize_text


@dataclass(frozen=True)
class TeacherTrainConfig:
    steps: int = 2000
    batch_size: int = 16  # windows (BERT) or sentences (LM) per step
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    minutes: float | None = None  # stop early when the wall-clock budget is spent
    seed: int = 0
    threads: int | None = None
    log_every: int = 50


def read_documents(path: Path) -> list[list[str]]:
    """Documents as lists of normalised sentences. `.jsonl`: one {"doc", "sentences"} per line, or
    a speech manifest ({"text", "doc", "pos"}: grouped by doc, ordered by pos). Other files: one
    sentence per line, documents separated by blank lines. Sentences the text policy rejects
    (digits) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise KdasrError(f"{path}: no such text file")

    def norm(s: str) -> str | None:
        try:
            return normalize_text(s) or None
        except TextError:
            return None

    docs: list[list[str]] = []
    if path.suffix == ".jsonl":
        manifest: dict[str, dict[int, str]] = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                raise KdasrError(f"{path}:{n}: not JSON") from None
            if "sentences" in d:
                docs.append([s for s in map(norm, d["sentences"]) if s])
            elif "text" in d:
                manifest.setdefault(d.get("doc") or d.get("id", str(n)), {}).setdefault(d.get("pos", 0), d["text"])
            else:
                raise KdasrError(f"{path}:{n}: expected 'sentences' or 'text'")
        for by_pos in manifest.values():
            docs.append([s for s in (norm(by_pos[p]) for p in sorted(by_pos)) if s])
    else:
        current: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                if current:
                    docs.append(current)
                current = []
            elif s := norm(line):
                current.append(s)
        if current:
            docs.append(current)
    docs = [d for d in docs if d]
    if not docs:
        raise KdasrError(f"{path}: no usable text")
    return docs


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_steps(
    model: torch.nn.Module, next_loss: Callable[[int], torch.Tensor], cfg: TeacherTrainConfig, desc: str
) -> dict:
    """Run up to cfg.steps optimiser steps of `next_loss(step)`; return a small training summary."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    t0, step, ema = time.time(), 0, None
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns) as progress:
        task = progress.add_task(desc, total=cfg.steps, info="")
        while step < cfg.steps:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg.lr, cfg.warmup_steps, cfg.steps)
            loss = next_loss(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            value = float(loss.detach())
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            if step % cfg.log_every == 0 or step == cfg.steps:
                progress.update(task, info=f"loss {ema:.3f}")
            progress.update(task, completed=step)
            if cfg.minutes is not None and time.time() - t0 > cfg.minutes * 60:
                break
    model.eval()
    return {"steps": step, "train_seconds": round(time.time() - t0, 1), "final_loss_ema": round(ema or 0.0, 4)}
