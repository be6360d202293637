"""The training loop: bucketed batches, CE or KD (+CTC), Noam warmup, clipping, optional bf16
autocast, torchrun DDP, atomic checkpoints, exact resume (model, optimiser, schedule position,
batch position and every RNG), a rich progress bar and CSV loss logs."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import jiwer
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import KdasrError
from ..models.config import ModelConfig
from ..models.reference_decode import ctc_greedy_ids
from ..models.student import Seq2SeqStudent, build_model, count_parameters, load_pretrained
from ..teachers.kd_mode import KdMode
from ..text import Tokenizer
from .batching import bucket_batches
from .checkpoint import TrainingCheckpoint, check_resumable, check_resume_settings, save_checkpoint
from .config import TrainConfig
from .data import Batch, Examples, collate
from .distributed import DistInfo, gather_objects, init_distributed, sync_flags
from .encoder_cache import check_cacheable, mask_states
from .losses import ctc_loss, kd_loss, label_smoothed_ce
from .specaugment import spec_augment


def noam_lr(step: int, peak: float, warmup: int) -> float:
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def compute_loss(
    model: torch.nn.Module, batch: Batch, tok: Tokenizer, cfg: TrainConfig, ctc_weight: float | None = None
) -> dict[str, torch.Tensor]:
    """(1 − w)·attention loss + w·CTC, where the attention loss is label-smoothed CE, or with
    soft labels in the batch and a KD mode in cfg, λ·CE(soft) + (1 − λ)·CE(hard)."""
    with torch.autocast(batch.feats.device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
        att_logits, ctc_logits, enc_lens = model(batch.feats, batch.feat_lens, batch.tokens_in)
    if cfg.kd is not KdMode.NONE and batch.soft_ids is not None:
        parts = kd_loss(
            att_logits,
            batch.targets,
            batch.soft_ids,
            batch.soft_probs,
            batch.soft_mask,
            tok.pad_id,
            cfg.label_smoothing,
            cfg.kd_weight,
            cfg.kd_smoothing,
        )
        att, extra = parts["loss"], {"hard": parts["hard"], "soft": parts["soft"]}
    else:
        att, extra = label_smoothed_ce(att_logits, batch.targets, tok.pad_id, cfg.label_smoothing), {}
    w = model.cfg.ctc_weight if ctc_weight is None else ctc_weight
    ctc = ctc_loss(ctc_logits, enc_lens, batch.ctc_targets, batch.target_lens, tok.pad_id) if w > 0 else att * 0
    return {"loss": (1 - w) * att + w * ctc, "att": att, "ctc": ctc, **extra}


def ctc_greedy_texts(model: Seq2SeqStudent, batch: Batch, tok: Tokenizer) -> list[str]:
    memory, lens = model.encode_features(batch.feats, batch.feat_lens)
    return [tok.decode(ids) for ids in ctc_greedy_ids(model.ctc_head(memory), lens, tok.pad_id)]


@torch.no_grad()
def evaluate(model: Seq2SeqStudent, dev: Examples, tok: Tokenizer, cfg: TrainConfig) -> dict[str, float]:
    model.eval()
    n = min(len(dev.ids), cfg.dev_utterances)
    batches = bucket_batches(dev.lengths[:n], cfg.max_frames, seed=0, epoch=0)
    total, count, hyps, refs = 0.0, 0, [], []
    device = next(model.parameters()).device
    for idx in batches:
        batch = collate(dev, idx, tok).to(device)
        total += float(compute_loss(model, batch, tok, cfg)["loss"]) * len(idx)
        count += len(idx)
        hyps += ctc_greedy_texts(model, batch, tok)
        refs += [dev.texts[i] for i in idx]
    model.train()
    return {"dev_loss": total / max(count, 1), "dev_ctc_wer": 100 * jiwer.wer(refs, hyps) if refs else float("nan")}


class CsvLog:
    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        if path.exists():  # keep the columns of a log an older version started
            with path.open(newline="") as f:
                self.fields = next(csv.reader(f), fields) or fields
        else:
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run redoes those steps and logs them again)."""
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        keep = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerows(keep)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


def param_groups(model: torch.nn.Module, pretrained_lr_scale: float) -> list[dict]:
    """Adam's groups: what starts from pretrained weights (a whisper encoder's conv stem, layers and
    norm) learns at lr x pretrained_lr_scale, the rest at lr; a fine-tuned pretrained layer at the
    decoder's from-scratch rate forgets what it knew."""
    # only those that train: a frozen run keeps one group, so its checkpoints load as before
    pretrained = [p for p in getattr(model.encoder, "pretrained_parameters", list)() if p.requires_grad]
    ids = {id(p) for p in pretrained}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr_scale": 1.0}]
    if pretrained:
        groups.append({"params": pretrained, "lr_scale": pretrained_lr_scale})
    return groups


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    train_ex: Examples,
    dev_ex: Examples,
    tok: Tokenizer,
    out_dir: Path,
    resume: bool = True,
    summary: dict | None = None,
    dist_info: DistInfo | None = None,
    on_finish: Callable[[torch.nn.Module], None] | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    checkpoint: TrainingCheckpoint | None = None,
    branch: TrainingCheckpoint | None = None,
) -> Path:
    """Train into out_dir (checkpoints last.pt, epoch-N.pt; logs train_log.csv, dev_log.csv).
    With resume=True and out_dir/last.pt present, continue exactly where it stopped: a run killed
    at any point and resumed ends in the same state as one never interrupted. `init_weights`
    starts a fresh run (new optimiser and schedule) from another model's weights. `checkpoint`:
    out_dir/last.pt already loaded (and checked) by the caller. `branch`: another run's checkpoint
    (loaded and checked by the caller) to continue from when out_dir holds no last.pt: its
    weights, optimiser, schedule and batch position, elapsed time and RNGs, with this call's
    loss settings (cfg.kd, cfg.kd_weight) and `summary`; with no KD and the same
    settings, the branch reproduces the source run's own continuation bit for bit."""
    info = dist_info or init_distributed()
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + info.rank)
    core = build_model(model_cfg).to(info.device)
    if init_weights is not None:
        # a partial init (--init-encoder-from) leaves the decoder as initialised above
        missing, unexpected = core.load_state_dict(init_weights, strict=False)
        if unexpected or any(not k.startswith("decoder.") for k in missing):
            raise KdasrError(f"initial weights do not fit this model: missing {missing[:3]}, extra {unexpected[:3]}")
    if init_weights is None and branch is None and not (resume and (out_dir / "last.pt").exists()):
        # a fresh run of a pretrained-encoder student (whisper) starts from the packaged weights
        if (pretrained := load_pretrained(core)) is not None:
            summary = {**(summary or {}), "pretrained_encoder": pretrained}
    if cfg.encoder_cache:  # the examples hold the frozen encoder part's cached states (recipe.py)
        check_cacheable(core)
        core.input_kind = "encoder_prefix"
    model: torch.nn.Module = core
    if info.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            core,
            device_ids=[info.local_rank] if info.device.startswith("cuda") else None,
            find_unused_parameters=model_cfg.ctc_weight == 0,
        )
    opt = torch.optim.Adam(param_groups(core, cfg.pretrained_lr_scale), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * info.rank)  # SpecAugment masks
    step, epoch, batch_pos, elapsed = 0, 0, 0, 0.0
    last = out_dir / "last.pt"
    train_log = (
        CsvLog(out_dir / "train_log.csv", ["step", "epoch", "loss", "att", "ctc", "soft", "hard", "lr", "elapsed_s"])
        if info.main
        else None
    )
    dev_log = (
        CsvLog(out_dir / "dev_log.csv", ["step", "epoch", "dev_loss", "dev_ctc_wer", "elapsed_s"])
        if info.main
        else None
    )
    resuming = resume and last.exists()
    if resuming or branch is not None:
        ck = checkpoint if resuming else branch
        if ck is None:
            ck = TrainingCheckpoint.load(last)
            check_resumable(last, ck, model_cfg, tok)
            check_resume_settings(last, ck, cfg)
        core.load_state_dict(ck.model)
        opt.load_state_dict(ck.optimizer)
        step, epoch, batch_pos, elapsed = ck.step, ck.epoch, ck.batch_pos, ck.elapsed
        if resuming:
            # the run's history stays the first start's: when it began, where its weights came from
            kept = ("started", "initialised_from", "encoder_initialised_from", "branched_from", "pretrained_encoder")
            summary = {**(summary or {}), **{k: ck.summary[k] for k in kept if k in ck.summary}}
        elif "pretrained_encoder" in ck.summary:  # a branch's weights hold its source's pretrained encoder
            summary = {**(summary or {}), "pretrained_encoder": ck.summary["pretrained_encoder"]}
        rngs = ck.rngs
        if rngs and len(rngs) == info.world:
            torch.set_rng_state(rngs[info.rank]["torch"])
            gen.set_state(rngs[info.rank]["specaug"])
            if "cuda" in rngs[info.rank] and info.device.startswith("cuda"):
                torch.cuda.set_rng_state(rngs[info.rank]["cuda"], info.device)
        else:  # older checkpoints (or another world size): the global RNG only
            torch.set_rng_state(ck.rng)
            gen.manual_seed(cfg.seed + step)
        if info.main:
            train_log.truncate_after(step)  # a branch restarted before its first last.pt logged steps again
            dev_log.truncate_after(step)
            source = last if resuming else (summary or {}).get("branched_from", {}).get("path", "another run")
            how = "resuming" if resuming else "branching"
            print(f"{how} from {source}: epoch {epoch}, batch {batch_pos}, step {step}")
    if info.main:
        print(
            f"model: {count_parameters(core) / 1e6:.2f}M parameters; train {len(train_ex.ids)} utts, "
            f"dev {len(dev_ex.ids)}; kd {cfg.kd}"
            + (f" (lambda {cfg.kd_weight})" if cfg.kd is not KdMode.NONE else "")
            + (f"; {info.world} processes" if info.world > 1 else "")
        )
        if count_parameters(core) < 200_000 and len(train_ex.ids) > 200:
            print(f"warning: a {count_parameters(core) / 1e6:.2f}M-parameter model (a test-sized config) for "
                  f"{len(train_ex.ids)} utterances: it cannot learn much; --config demo suits hours of speech")

    def payload(kind: str) -> TrainingCheckpoint:
        state = {"torch": torch.get_rng_state(), "specaug": gen.get_state()}
        if info.device.startswith("cuda"):
            state["cuda"] = torch.cuda.get_rng_state(info.device)
        rngs = gather_objects(info, state)
        return TrainingCheckpoint(
            kind=kind,
            model_config=model_cfg,
            train_config=cfg.to_dict(),
            model=core.state_dict(),
            optimizer=opt.state_dict(),
            step=step,
            epoch=epoch,
            batch_pos=batch_pos,
            elapsed=elapsed,
            rng=torch.get_rng_state(),
            rngs=rngs,
            world_size=info.world,
            tokenizer_model=tok.model_bytes,
            summary=summary or {},
        )

    def save(path: Path, kind: str) -> None:
        data = payload(kind)  # collective under DDP: every rank takes part
        if info.main:
            save_checkpoint(path, data)

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
    why = ""
    with Progress(*columns, disable=not info.main) as progress:
        while epoch < cfg.epochs and not stop:
            batches = bucket_batches(train_ex.lengths, cfg.max_frames, cfg.seed, epoch)
            n_steps = max(1, len(batches) // info.world)  # one global step = world batches
            task = progress.add_task(f"epoch {epoch}", total=n_steps, completed=batch_pos, info="")
            while batch_pos < n_steps:
                idx = batches[(batch_pos * info.world + info.rank) % len(batches)]
                batch = collate(train_ex, idx, tok)
                if step >= cfg.specaug_start_step:
                    augment = mask_states if cfg.encoder_cache else spec_augment
                    batch.feats = augment(batch.feats, batch.feat_lens, cfg.specaug, gen)
                batch = batch.to(info.device)
                lr = noam_lr(step + 1, cfg.lr, cfg.warmup_steps)
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)  # (checkpoints before the scale have none)
                losses = compute_loss(model, batch, tok, cfg, ctc_weight=model_cfg.ctc_weight)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                torch.nn.utils.clip_grad_norm_(core.parameters(), cfg.grad_clip)
                opt.step()
                step, batch_pos = step + 1, batch_pos + 1
                elapsed = time.time() - t0
                if info.main and step % cfg.log_every == 0:
                    row = {k: f"{float(v.detach()):.4f}" for k, v in losses.items()}
                    train_log.write(
                        {**row, "step": step, "epoch": epoch, "lr": f"{lr:.2e}", "elapsed_s": f"{elapsed:.0f}"}
                    )
                    progress.update(task, info=f"loss {row['loss']} att {row['att']} ctc {row['ctc']}")
                progress.update(task, completed=batch_pos)
                out_of_time = cfg.max_minutes is not None and elapsed > cfg.max_minutes * 60
                out_of_steps = cfg.max_steps is not None and step >= cfg.max_steps
                snaps = [out_dir / f"snapshot-{m:g}min.pt" for m in cfg.snapshot_minutes]
                due = [elapsed >= m * 60 and not p.exists() for m, p in zip(cfg.snapshot_minutes, snaps)]
                ckpt_due = time.time() - last_ckpt > cfg.checkpoint_minutes * 60
                flags = sync_flags(info, [out_of_time or out_of_steps, ckpt_due, *due])
                if flags[0]:
                    stop = True
                    why = (f"the --minutes budget ({cfg.max_minutes:g} min)" if out_of_time else
                           f"--max-steps {cfg.max_steps}" if out_of_steps else "another process's budget")
                    break
                for p, d in zip(snaps, flags[2:]):
                    if d:
                        save(p, "snapshot")
                if flags[1]:
                    save(last, "last")
                    last_ckpt = time.time()
            if batch_pos >= n_steps:  # epoch finished: evaluate, keep an epoch checkpoint
                if info.main:
                    metrics = evaluate(core, dev_ex, tok, cfg)
                    dev_log.write({**metrics, "step": step, "epoch": epoch, "elapsed_s": f"{elapsed:.0f}"})
                    progress.console.print(
                        f"epoch {epoch}: dev loss {metrics['dev_loss']:.3f}, "
                        f"dev CTC greedy WER {metrics['dev_ctc_wer']:.1f}%"
                    )
                epoch, batch_pos = epoch + 1, 0
                save(out_dir / f"epoch-{epoch}.pt", "epoch")
                if info.main:
                    (out_dir / f"epoch-{epoch - cfg.keep_epochs}.pt").unlink(missing_ok=True)
            save(last, "last")
    if info.main:  # say why it ended: a budget, or the config's epochs (raise --epochs to go on)
        reason = why if stop else f"all {cfg.epochs} epochs of the config are done (--epochs N to go on)"
        print(f"stopped at step {step}, epoch {epoch}: {reason}")
    if on_finish is not None:  # e.g. to compare ranks, or keep the trained model in memory
        on_finish(core)
    return last
