"""`kdasr teacher bench`: the teachers measured side by side in one run, into a TeacherBench
record (kdasr.teachers.bench_records; kdasr.teachers.bench_report writes Markdown and JSON).

Soft-label speed (fast vs the paper code's straightforward way, labels compared), KD training
step time vs the baseline step (and bf16 autocast; measured by kdasr.training.kd_bench, passed
in), soft-label bytes per token, and the teachers' dev perplexities (BERT pseudo-perplexity, LM
perplexity)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.manifest import read_manifest
from ..machine import cpu_has_amx, cpu_model
from ..text import Tokenizer
from .bench_records import BertInfo, KdStepTimes, LmInfo, SoftLabelSpeed, TeacherBench
from .bert import load_bert_teacher, pseudo_perplexity
from .context import DocumentIndex, utterance_windows
from .lm_train import lm_perplexity, load_lm_teacher
from .soft_labels import SoftLabelConfig, fast_window_labels, generate_soft_labels, lm_labels, straightforward_labels
from .storage import load_soft_labels


def machine() -> str:
    cpu = cpu_model() + (" (AMX)" if cpu_has_amx() else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__}, {torch.get_num_threads()} torch "
        f"thread(s), GPU: {gpu}, load average at start {load:.2f}"
    )


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_soft_labels(teacher, tok: Tokenizer, utts, mode: str, window: int, repeats: int = 2) -> SoftLabelSpeed:
    cfg = SoftLabelConfig(mode=mode, window=window)
    docs = DocumentIndex(utts, tok.encode) if mode == "context" else None
    per_utt = [utterance_windows(u, tok.encode(u.text), mode, window, docs) for u in utts]
    windows = [w for ws in per_utt for w in ws]
    unique = list(dict.fromkeys(windows))
    tokens = sum(w.length for w in windows)
    bf16_cfg = SoftLabelConfig(mode=mode, window=window, amp="bf16")
    t_slow = t_fast = t_dedup = t_bf16 = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):  # interleaved; the fastest of each is kept (robust to a busy machine)
            slow, t = _timed(lambda: straightforward_labels(teacher.model, windows, cfg, teacher.mask_id))
            t_slow = min(t_slow, t)
            fast, t = _timed(lambda: fast_window_labels(teacher.model, windows, cfg, teacher.mask_id))
            t_fast = min(t_fast, t)
            fast_unique, t = _timed(lambda: fast_window_labels(teacher.model, unique, cfg, teacher.mask_id))
            t_dedup = min(t_dedup, t)
            bf16, t = _timed(lambda: fast_window_labels(teacher.model, unique, bf16_cfg, teacher.mask_id))
            t_bf16 = min(t_bf16, t)
    same_ids = np.mean([np.mean(a[0] == b[0]) for a, b in zip(fast, slow)])
    max_diff = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(fast, slow))
    return SoftLabelSpeed(
        mode=mode,
        utterances=len(utts),
        tokens=tokens,
        mean_window=float(np.mean([len(w.tokens) for w in windows])),
        unique_windows=len(unique),
        windows=len(windows),
        slow_tps=tokens / t_slow,
        fast_tps=tokens / t_fast,
        dedup_tps=tokens / t_dedup,
        same_ids=float(same_ids),
        max_prob_diff=max_diff,
        # bf16 autocast against fp32, both fast + dedup: the labels a recipe on an AMX CPU stores
        bf16_tps=tokens / t_bf16,
        bf16_same_top1=float(
            np.mean(np.concatenate([a[0][:, 0] == b[0][:, 0] for a, b in zip(bf16, fast_unique)]))
        ),
        bf16_same_ids=float(np.mean([np.mean(a[0] == b[0]) for a, b in zip(bf16, fast_unique)])),
        bf16_max_prob_diff=max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(bf16, fast_unique)),
    )


@dataclass(frozen=True)
class TeacherBenchConfig:
    tokenizer: Path
    bert_dir: Path
    lm_dir: Path
    train: Path  # speech manifest: soft-label and KD-step timing
    dev: Path  # dev manifest: teacher perplexities
    n_utts: int = 40
    preset: str = "demo"  # student config of the KD step timing
    threads: int | None = 1
    repeats: int = 2
    command: str = ""


def run_bench(cfg: TeacherBenchConfig, kd_step: Callable[[Tokenizer, str], KdStepTimes] | None = None) -> TeacherBench:
    """Time the teachers (kdasr.teachers.bench_report writes the record). `kd_step(tokenizer,
    preset)` is the trainer's benchmark (kdasr.training.kd_bench.bench_kd_step), passed in by the
    command so that the teachers stage never imports training; None leaves that section out."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tok = Tokenizer(cfg.tokenizer)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    desc = machine()
    bert = load_bert_teacher(cfg.bert_dir, tok)
    lm, _ = load_lm_teacher(cfg.lm_dir, tok)
    train_utts = [u for u in read_manifest(cfg.train) if tok.encode(u.text)]
    subset = train_utts[: cfg.n_utts]
    speeds = tuple(bench_soft_labels(bert, tok, subset, m, bert.window, cfg.repeats) for m in ("utterance", "context"))
    seqs = [tuple(tok.encode(u.text)) for u in subset]
    with torch.inference_mode():
        _, t_lm = _timed(lambda: lm_labels(lm, seqs, SoftLabelConfig()))
    lm_tokens = sum(map(len, seqs))
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        generate_soft_labels(subset, tok, bert, "bert", SoftLabelConfig(mode="context"), Path(tmp), progress=False)
        sl = load_soft_labels(Path(tmp))
        bytes_per_token = sl.bytes_on_disk / sum(r[0].shape[0] for r in sl.rows.values())
    step = kd_step(tok, cfg.preset) if kd_step is not None else None
    seen, dev_sents = set(), []
    for u in read_manifest(cfg.dev):
        if (u.doc, u.pos, u.text) not in seen and (t := tok.encode(u.text)):
            seen.add((u.doc, u.pos, u.text))
            dev_sents.append(t)
    dev_sents = dev_sents[:200]
    with torch.inference_mode():
        pppl = pseudo_perplexity(bert, dev_sents)
        lm_ppl = lm_perplexity(lm, dev_sents, tok)
    bcfg = bert.model.config
    return TeacherBench(
        run=started, machine=desc, command=cfg.command, utterances=len(subset), repeats=cfg.repeats,
        threads=cfg.threads,
        bert=BertInfo(str(bert.path), bcfg.num_hidden_layers, bcfg.hidden_size, bcfg.num_attention_heads, bert.window),
        lm=LmInfo(lm.cfg.layers, lm.cfg.d_model), soft_labels=speeds, lm_tokens=lm_tokens, lm_tps=lm_tokens / t_lm,
        bytes_per_token=float(bytes_per_token), kd_step=step, dev_sentences=len(dev_sents), bert_pppl=float(pppl),
        lm_ppl=float(lm_ppl),
    )
