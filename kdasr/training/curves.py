"""Learning curves: every epoch checkpoint of one or more runs decoded on the same dev subset with
the torch reference decoders (greedy attention, greedy CTC), as a CSV and a PNG plot.

Each checkpoint's result is cached beside it (RUN_DIR/curves/epoch-N.<key>.json, written
atomically, keyed by the checkpoint file and the dev subset), so re-running after more epochs,
or after a kill, decodes only the checkpoints not done yet. A branch (`kdasr train
--branch-from`) is drawn from the point it left its source run."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jiwer
import torch

from ..data.manifest import Utterance, read_manifest
from ..errors import KdasrError
from ..io_utils import atomic_open, atomic_write_text
from ..models.frontend import LogMelFrontend
from ..models.reference_decode import ctc_greedy_ids, greedy_from_memory
from ..models.student_io import load_checkpoint, load_student
from ..models.whisper_frontend import WhisperFrontend
from ..teachers.kd_mode import KdMode
from .batching import bucket_batches
from .config import TrainConfig
from .data import collate, make_examples
from .features import FeatureSet, compute_features
from .trainer import compute_loss

FIELDS = [
    "run", "epoch", "step", "train_seconds", "dev_wer_attention", "dev_wer_ctc", "dev_loss", "dev_att_loss",
    "utterances", "checkpoint", "kd", "branched_from", "branch_step",
]
CACHE_VERSION = 1  # bump when what a cached row means changes
EPOCH_FILE = re.compile(r"epoch-(\d+)\.pt$")


@dataclass(frozen=True)
class DevSubset:
    """The first `limit` dev utterances (those the trainer would keep), features ready."""

    manifest: Path
    utts: list[Utterance]
    feats: FeatureSet
    frontend: tuple  # sample rate, n_fft, hop, mels the features were made with, and the kind (kdasr/whisper)
    key: str  # identifies the subset (ids and texts) in cache keys

    @property
    def ids(self) -> list[str]:
        return self.feats.ids


def epoch_checkpoints(run_dir: Path) -> list[Path]:
    found = [(int(m[1]), p) for p in Path(run_dir).glob("epoch-*.pt") if (m := EPOCH_FILE.search(p.name))]
    return [p for _, p in sorted(found)]


def frontend_of(model_config: dict) -> tuple:
    kind = "whisper" if str(model_config.get("encoder_type", "")).startswith("whisper") else "kdasr"
    return (*(int(model_config[k]) for k in ("sample_rate", "n_fft", "hop_length", "n_mels")), kind)


def load_dev_subset(
    manifest: Path, limit: int, frontend: tuple, feature_cache: Path | None, own_cache: Path
) -> DevSubset:
    """With `feature_cache` (the training's --feature-cache), its dev features are read (the whole
    manifest's shards, as training wrote them); otherwise the subset's features go to own_cache."""
    sample_rate = frontend[0]
    mel = WhisperFrontend() if frontend[4] == "whisper" else LogMelFrontend(*frontend[:4])
    utts = read_manifest(manifest)
    if not utts:
        raise KdasrError(f"{manifest}: no utterances")
    if feature_cache is not None:
        feats = compute_features(utts, Path(feature_cache) / "dev", mel, sample_rate, desc="dev features")
    else:
        feats = compute_features(utts[:limit], own_cache, mel, sample_rate, desc="dev features")
    first = {u.id for u in utts[:limit]}
    keep = [i for i, uid in enumerate(feats.ids) if uid in first]
    subset = FeatureSet([feats.ids[i] for i in keep], [feats.feats[i] for i in keep])
    by_id = {u.id: u for u in utts}
    chosen = [by_id[i] for i in subset.ids]
    key = hashlib.sha1("\n".join(f"{u.id}\t{u.text}" for u in chosen).encode()).hexdigest()[:12]
    return DevSubset(Path(manifest), chosen, subset, frontend, key)


def cache_path(checkpoint: Path, dev: DevSubset, max_frames: int) -> Path:
    st = checkpoint.stat()
    ident = f"{CACHE_VERSION}|{checkpoint.resolve()}|{st.st_size}|{st.st_mtime_ns}|{dev.key}|{max_frames}"
    digest = hashlib.sha1(ident.encode()).hexdigest()[:12]
    return checkpoint.parent / "curves" / f"{checkpoint.stem}.{digest}.json"


@torch.no_grad()
def decode_checkpoint(
    checkpoint: Path, dev: DevSubset, max_frames: int, advance: Callable[[int], None] = lambda n: None
) -> dict:
    """One checkpoint on the dev subset: greedy attention and CTC WER (%), and the dev loss with
    hard labels only (label-smoothed CE, + CTC at the model's weight), comparable across KD runs."""
    student = load_student(checkpoint)
    model, tok, ck = student.model, student.tokenizer, student.checkpoint
    if frontend_of(ck["model_config"]) != dev.frontend:
        raise KdasrError(f"{checkpoint}: its features (rate, FFT, hop, mels, kind) {frontend_of(ck['model_config'])} "
                         f"differ from the other runs' {dev.frontend}: decode it in a separate `kdasr curves`")
    ex = make_examples(dev.utts, dev.feats, tok)
    if not ex.ids:
        raise KdasrError(f"{dev.manifest}: none of the first dev utterances is usable (too short or empty)")
    smoothing = ck.get("train_config", {}).get("label_smoothing", TrainConfig.label_smoothing)
    loss_cfg = TrainConfig(kd=KdMode.NONE, label_smoothing=smoothing)
    att_hyps, ctc_hyps, refs, total, att_total = [], [], [], 0.0, 0.0
    for idx in bucket_batches(ex.lengths, max_frames, seed=0, epoch=0):
        batch = collate(ex, idx, tok)
        losses = compute_loss(model, batch, tok, loss_cfg)
        total += float(losses["loss"]) * len(idx)
        att_total += float(losses["att"]) * len(idx)
        memory, lens = model.encode_features(batch.feats, batch.feat_lens)
        att_hyps += [tok.decode(t) for t in greedy_from_memory(model, memory, lens, tok.bos_id, tok.eos_id, tok.pad_id)]
        ctc_hyps += [tok.decode(t) for t in ctc_greedy_ids(model.ctc_head(memory), lens, tok.pad_id)]
        refs += [ex.texts[i] for i in idx]
        advance(len(idx))
    summary = ck.get("summary", {})
    branch = summary.get("branched_from") or {}
    return {
        "epoch": ck.get("epoch"),
        "step": ck.get("step"),
        "train_seconds": round(float(ck.get("elapsed", 0.0)), 1),
        "dev_wer_attention": round(100 * jiwer.wer(refs, att_hyps), 3),
        "dev_wer_ctc": round(100 * jiwer.wer(refs, ctc_hyps), 3),
        "dev_loss": round(total / len(refs), 5),
        "dev_att_loss": round(att_total / len(refs), 5),
        "utterances": len(refs),
        "kd": summary.get("kd", ck.get("train_config", {}).get("kd", "none")),
        "branched_from": branch.get("path", ""),
        "branch_step": branch.get("step", ""),
    }


def run_names(run_dirs: list[Path]) -> list[str]:
    """Each run's folder name; the whole path where two runs share a name."""
    names = [Path(r).name for r in run_dirs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, run_dirs)]


def learning_curves(
    run_dirs: list[Path],
    dev_manifest: Path,
    limit: int = 300,
    feature_cache: Path | None = None,
    max_frames: int = 16000,
    progress: bool = True,
) -> tuple[list[dict], list[str], int]:
    """Rows (one per epoch checkpoint, in run order then step), one-line failures (a checkpoint
    that cannot be read is reported and skipped; the others are still decoded) and how many
    checkpoints were decoded now (the rest came from the cache)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    run_dirs = [Path(r) for r in run_dirs]
    for r in run_dirs:
        if not r.is_dir():
            raise KdasrError(f"{r}: no such run folder")
    checkpoints = {r: epoch_checkpoints(r) for r in run_dirs}
    if not any(checkpoints.values()):
        raise KdasrError(f"no epoch-N.pt checkpoint in {', '.join(map(str, run_dirs))}")
    frontend = None  # from the first readable checkpoint; every run must share it (checked)
    for ck in (p for ps in checkpoints.values() for p in ps):
        try:
            frontend = frontend_of(load_checkpoint(ck)["model_config"])
            break
        except (KdasrError, KeyError, TypeError, ValueError):
            continue
    if frontend is None:
        raise KdasrError(f"no readable epoch checkpoint in {', '.join(map(str, run_dirs))}")
    own_cache = run_dirs[0] / "curves" / "feats"
    dev = load_dev_subset(dev_manifest, limit, frontend, feature_cache, own_cache)
    todo = [(r, p) for r, ps in checkpoints.items() for p in ps if not cache_path(p, dev, max_frames).is_file()]
    rows, failures, decoded = [], [], 0
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} utts"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task(f"decoding {len(todo)} checkpoints", total=len(todo) * len(dev.ids))
        for name, run in zip(run_names(run_dirs), run_dirs):
            for ck in checkpoints[run]:
                cached = cache_path(ck, dev, max_frames)
                if cached.is_file():
                    row = json.loads(cached.read_text())
                else:
                    bar.update(task, description=f"{name} {ck.name}")
                    try:
                        row = decode_checkpoint(ck, dev, max_frames, lambda n: bar.advance(task, n))
                    except (KdasrError, OSError) as e:
                        failures.append(str(e) if str(e).startswith(str(ck)) else f"{ck}: {e}")
                        continue
                    atomic_write_text(cached, json.dumps(row, indent=1) + "\n")
                    decoded += 1
                rows.append({"run": name, "checkpoint": str(ck), **row})
    return rows, failures, decoded


def write_csv(rows: list[dict], path: Path) -> None:
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def plot_curves(rows: list[dict], path: Path, title: str = "") -> None:
    """Dev WER against training step, greedy attention (left) and CTC (right), one line per run;
    a branch starts with a dashed segment from the source checkpoint's point, marked with a ring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys(r["run"] for r in rows))
    by_ckpt = {str(Path(r["checkpoint"]).resolve()): r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for ax, key, what in zip(axes, ("dev_wer_attention", "dev_wer_ctc"), ("greedy attention", "greedy CTC")):
        for i, run in enumerate(runs):
            pts = sorted((int(r["step"]), float(r[key]), r) for r in rows if r["run"] == run)
            color = f"C{i % 10}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=color, label=run)
            source = pts[0][2].get("branched_from") if pts else ""
            if source:
                start = by_ckpt.get(str(Path(source).resolve()))
                if start is not None:  # the source run is plotted: join the branch to its point
                    ax.plot([int(start["step"]), pts[0][0]], [float(start[key]), pts[0][1]], "--", color=color)
                    ax.plot(int(start["step"]), float(start[key]), "o", ms=9, mfc="none", color=color)
                else:
                    ax.axvline(int(pts[0][2]["branch_step"]), ls=":", color=color, lw=1)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"dev WER % ({what})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    n = rows[0]["utterances"] if rows else 0
    fig.suptitle(title or f"learning curves: first {n} dev utterances, torch reference greedy decoding")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
