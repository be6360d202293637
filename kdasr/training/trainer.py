"""The training loop: bucketed batches, CE(+CTC), Noam warmup, clipping, atomic checkpoints,
resume from the exact batch, a rich progress bar and CSV loss logs."""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from pathlib import Path

import jiwer
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..models.config import ModelConfig
from ..models.student import Seq2SeqStudent, build_model, count_parameters
from ..text import Tokenizer
from .batching import bucket_batches
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Batch, Examples, collate
from .losses import ctc_loss, label_smoothed_ce
from .specaugment import spec_augment


def noam_lr(step: int, peak: float, warmup: int) -> float:
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def compute_loss(model: Seq2SeqStudent, batch: Batch, tok: Tokenizer, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    att_logits, ctc_logits, enc_lens = model(batch.feats, batch.feat_lens, batch.tokens_in)
    att = label_smoothed_ce(att_logits, batch.targets, tok.pad_id, cfg.label_smoothing)
    w = model.cfg.ctc_weight
    ctc = ctc_loss(ctc_logits, enc_lens, batch.ctc_targets, batch.target_lens, tok.pad_id) if w > 0 else att * 0
    return {"loss": (1 - w) * att + w * ctc, "att": att, "ctc": ctc}


def ctc_greedy_texts(model: Seq2SeqStudent, batch: Batch, tok: Tokenizer) -> list[str]:
    memory, lens = model.encoder(batch.feats, batch.feat_lens)
    best = model.ctc_head(memory).argmax(-1)
    texts = []
    for row, n in zip(best.tolist(), lens.tolist()):
        ids, prev = [], None
        for t in row[:n]:
            if t != prev and t != tok.pad_id:
                ids.append(t)
            prev = t
        texts.append(tok.decode(ids))
    return texts


@torch.no_grad()
def evaluate(model: Seq2SeqStudent, dev: Examples, tok: Tokenizer, cfg: TrainConfig) -> dict[str, float]:
    model.eval()
    n = min(len(dev.ids), cfg.dev_utterances)
    batches = bucket_batches(dev.lengths[:n], cfg.max_frames, seed=0, epoch=0)
    total, count, hyps, refs = 0.0, 0, [], []
    for idx in batches:
        batch = collate(dev, idx, tok)
        total += float(compute_loss(model, batch, tok, cfg)["loss"]) * len(idx)
        count += len(idx)
        hyps += ctc_greedy_texts(model, batch, tok)
        refs += [dev.texts[i] for i in idx]
    model.train()
    return {"dev_loss": total / max(count, 1), "dev_ctc_wer": 100 * jiwer.wer(refs, hyps) if refs else float("nan")}


class CsvLog:
    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    train_ex: Examples,
    dev_ex: Examples,
    tok: Tokenizer,
    out_dir: Path,
    resume: bool = True,
    summary: dict | None = None,
) -> Path:
    """Train into out_dir (checkpoints last.pt, epoch-N.pt; logs train_log.csv, dev_log.csv).
    With resume=True and out_dir/last.pt present, continue exactly where it stopped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    step, epoch, batch_pos, elapsed = 0, 0, 0, 0.0
    last = out_dir / "last.pt"
    if resume and last.exists():
        ck = load_checkpoint(last)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, epoch, batch_pos, elapsed = ck["step"], ck["epoch"], ck["batch_pos"], ck["elapsed"]
        torch.set_rng_state(ck["rng"])
        print(f"resuming from {last}: epoch {epoch}, batch {batch_pos}, step {step}")
    gen = torch.Generator().manual_seed(cfg.seed + step)
    train_log = CsvLog(out_dir / "train_log.csv", ["step", "epoch", "loss", "att", "ctc", "lr", "elapsed_s"])
    dev_log = CsvLog(out_dir / "dev_log.csv", ["step", "epoch", "dev_loss", "dev_ctc_wer", "elapsed_s"])
    print(
        f"model: {count_parameters(model) / 1e6:.2f}M parameters; train {len(train_ex.ids)} utts, dev {len(dev_ex.ids)}"
    )

    def payload(kind: str) -> dict:
        return {
            "kind": kind,
            "model_config": model_cfg.to_dict(),
            "train_config": dataclasses.asdict(cfg),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "epoch": epoch,
            "batch_pos": batch_pos,
            "elapsed": elapsed,
            "rng": torch.get_rng_state(),
            "tokenizer_model": tok.model_bytes,
            "summary": summary or {},
        }

    model.train()
    t0, last_ckpt, stop = time.time() - elapsed, time.time(), False
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns) as progress:
        while epoch < cfg.epochs and not stop:
            batches = bucket_batches(train_ex.lengths, cfg.max_frames, cfg.seed, epoch)
            task = progress.add_task(f"epoch {epoch}", total=len(batches), completed=batch_pos, info="")
            while batch_pos < len(batches):
                batch = collate(train_ex, batches[batch_pos], tok)
                if step >= cfg.specaug_start_step:
                    batch.feats = spec_augment(batch.feats, batch.feat_lens, cfg.specaug, gen)
                lr = noam_lr(step + 1, cfg.lr, cfg.warmup_steps)
                for g in opt.param_groups:
                    g["lr"] = lr
                losses = compute_loss(model, batch, tok, cfg)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                step, batch_pos = step + 1, batch_pos + 1
                elapsed = time.time() - t0
                if step % cfg.log_every == 0:
                    row = {k: f"{float(v):.4f}" for k, v in losses.items()}
                    train_log.write(
                        {**row, "step": step, "epoch": epoch, "lr": f"{lr:.2e}", "elapsed_s": f"{elapsed:.0f}"}
                    )
                    progress.update(task, info=f"loss {row['loss']} att {row['att']} ctc {row['ctc']}")
                progress.update(task, completed=batch_pos)
                out_of_time = cfg.max_minutes is not None and elapsed > cfg.max_minutes * 60
                out_of_steps = cfg.max_steps is not None and step >= cfg.max_steps
                if out_of_time or out_of_steps:
                    stop = True
                    break
                for m in cfg.snapshot_minutes:
                    snap = out_dir / f"snapshot-{m:g}min.pt"
                    if elapsed >= m * 60 and not snap.exists():
                        save_checkpoint(snap, payload("snapshot"))
                if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                    save_checkpoint(last, payload("last"))
                    last_ckpt = time.time()
            if batch_pos >= len(batches):  # epoch finished: evaluate, keep an epoch checkpoint
                metrics = evaluate(model, dev_ex, tok, cfg)
                dev_log.write({**metrics, "step": step, "epoch": epoch, "elapsed_s": f"{elapsed:.0f}"})
                progress.console.print(
                    f"epoch {epoch}: dev loss {metrics['dev_loss']:.3f}, "
                    f"dev CTC greedy WER {metrics['dev_ctc_wer']:.1f}%"
                )
                epoch, batch_pos = epoch + 1, 0
                save_checkpoint(out_dir / f"epoch-{epoch}.pt", payload("epoch"))
                old = out_dir / f"epoch-{epoch - cfg.keep_epochs}.pt"
                old.unlink(missing_ok=True)
            save_checkpoint(last, payload("last"))
    return last
