"""`kdasr teacher bench`: the teachers measured side by side in one run, written as markdown.

Soft-label speed (fast vs the paper code's straightforward way, labels compared), KD training
step time vs the baseline step (and bf16 autocast; measured by kdasr.training.kd_bench, passed
in), soft-label bytes per token, and the teachers' dev perplexities (BERT pseudo-perplexity, LM
perplexity)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..data.manifest import read_manifest
from ..io_utils import atomic_write_text
from ..machine import cpu_has_amx, cpu_model
from ..text import Tokenizer
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


def bench_soft_labels(teacher, tok: Tokenizer, utts, mode: str, window: int, repeats: int = 2) -> dict:
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
    return {
        "mode": mode,
        "utterances": len(utts),
        "tokens": tokens,
        "mean_window": np.mean([len(w.tokens) for w in windows]),
        "unique_windows": len(unique),
        "windows": len(windows),
        "slow_tps": tokens / t_slow,
        "fast_tps": tokens / t_fast,
        "dedup_tps": tokens / t_dedup,
        "same_ids": same_ids,
        "max_prob_diff": max_diff,
        # bf16 autocast against fp32, both fast + dedup: the labels a recipe on an AMX CPU stores
        "bf16_tps": tokens / t_bf16,
        "bf16_same_top1": np.mean(np.concatenate([a[0][:, 0] == b[0][:, 0] for a, b in zip(bf16, fast_unique)])),
        "bf16_same_ids": np.mean([np.mean(a[0] == b[0]) for a, b in zip(bf16, fast_unique)]),
        "bf16_max_prob_diff": max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(bf16, fast_unique)),
    }


def run_bench(
    tokenizer: Path,
    bert_dir: Path,
    lm_dir: Path,
    train: Path,
    dev: Path,
    report: Path,
    n_utts: int = 40,
    preset: str = "demo",
    threads: int | None = 1,
    repeats: int = 2,
    command: str = "",
    kd_step: Callable[[Tokenizer, str], dict[str, float]] | None = None,
) -> str:
    """Time the teachers and write the report. `kd_step(tokenizer, preset)` -> step seconds per
    variant is the trainer's benchmark (kdasr.training.kd_bench.bench_kd_step), passed in by the
    command so that the teachers stage never imports training; None leaves that section out."""
    if threads:
        torch.set_num_threads(threads)
    tok = Tokenizer(tokenizer)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    desc = machine()
    bert = load_bert_teacher(bert_dir, tok)
    lm, _ = load_lm_teacher(lm_dir, tok)
    train_utts = [u for u in read_manifest(train) if tok.encode(u.text)]
    subset = train_utts[:n_utts]
    rows = [bench_soft_labels(bert, tok, subset, m, bert.window, repeats) for m in ("utterance", "context")]
    seqs = [tuple(tok.encode(u.text)) for u in subset]
    with torch.inference_mode():
        _, t_lm = _timed(lambda: lm_labels(lm, seqs, SoftLabelConfig()))
    lm_tps = sum(map(len, seqs)) / t_lm
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        generate_soft_labels(subset, tok, bert, "bert", SoftLabelConfig(mode="context"), Path(tmp), progress=False)
        sl = load_soft_labels(Path(tmp))
        bytes_per_token = sl.bytes_on_disk / sum(r[0].shape[0] for r in sl.rows.values())
    step = kd_step(tok, preset) if kd_step is not None else None
    dev_utts = read_manifest(dev)
    seen, dev_sents = set(), []
    for u in dev_utts:
        if (u.doc, u.pos, u.text) not in seen and (t := tok.encode(u.text)):
            seen.add((u.doc, u.pos, u.text))
            dev_sents.append(t)
    dev_sents = dev_sents[:200]
    with torch.inference_mode():
        pppl = pseudo_perplexity(bert, dev_sents)
        lm_ppl = lm_perplexity(lm, dev_sents, tok)
    return _write_report(
        report,
        started,
        desc,
        rows,
        lm_tps,
        bytes_per_token,
        step,
        pppl,
        lm_ppl,
        len(dev_sents),
        bert,
        lm,
        n_utts,
        preset,
        threads,
        repeats,
        command,
    )


def _write_report(
    report,
    started,
    desc,
    rows,
    lm_tps,
    bytes_per_token,
    step,
    pppl,
    lm_ppl,
    n_dev,
    bert,
    lm,
    n_utts,
    preset,
    threads,
    repeats,
    command,
) -> str:
    bcfg = bert.model.config
    lines = [
        "# Teachers: soft-label speed, KD step cost, storage, perplexity",
        "",
        f"Generated by `kdasr teacher bench` on {started}, all figures from this one run.",
        f"Machine: {desc}. The machine was shared with other jobs while this ran (see the load average), so",
        "absolute speeds are lower than on an idle machine; the ratios compare methods run back to back.",
        "",
        f"BERT teacher: `{bert.path}` ({bcfg.num_hidden_layers} layers, {bcfg.hidden_size} hidden, "
        f"{bcfg.num_attention_heads} heads, window {bert.window}). LM teacher: {lm.cfg.layers} layers, "
        f"{lm.cfg.d_model} wide.",
        "",
        f"## Soft-label generation (first {n_utts} training utterances, top-8, T=3; fastest of {repeats} "
        "interleaved runs per method)",
        "",
        "*straightforward* = the paper code's way: one row per masked copy in corpus order, batches of 50 "
        "padded to the longest row, the full model with the MLM head over every position and the whole "
        "vocabulary. *fast* = masked copies of equal-length windows batched together without padding, "
        "BERT's last layer (beyond its keys/values) and the MLM head only at the masked position. "
        "*fast + dedup* = also computing each distinct window once (identical windows come from one "
        "sentence spoken by several voices: the table's distinct count says how many this corpus has).",
        "",
        "| mode | tokens | windows (distinct) | mean window | straightforward tok/s | fast tok/s "
        "| fast + dedup tok/s | speed-up "
        "(fast / fast+dedup) | same top-8 ids | max prob diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| BERT {r['mode']} | {r['tokens']} | {r['windows']} ({r['unique_windows']}) | {r['mean_window']:.0f} "
            f"| {r['slow_tps']:.0f} | {r['fast_tps']:.0f} "
            f"| {r['dedup_tps']:.0f} | {r['fast_tps'] / r['slow_tps']:.2f}× / {r['dedup_tps'] / r['slow_tps']:.2f}× "
            f"| {100 * r['same_ids']:.2f}% | {r['max_prob_diff']:.1e} |"
        )
    lines += [
        f"| LM (one causal forward per utterance) | {rows[0]['tokens']} | – | – | – | {lm_tps:.0f} | – | – | – | – |",
        "",
        "bf16 autocast (`--amp bf16`: the teacher's body in bf16, its MLM head in fp32), fast + dedup, "
        "against the same in fp32:",
        "",
        "| mode | bf16 tok/s | vs fp32 | same top-1 | same top-8 ids (in order) | max prob diff |",
        "|---|---|---|---|---|---|",
        *(
            f"| BERT {r['mode']} | {r['bf16_tps']:.0f} | {r['bf16_tps'] / r['dedup_tps']:.2f}× "
            f"| {100 * r['bf16_same_top1']:.2f}% | {100 * r['bf16_same_ids']:.2f}% | {r['bf16_max_prob_diff']:.1e} |"
            for r in rows
        ),
        "",
        f"Soft-label storage: **{bytes_per_token:.1f} bytes per token** (int16 ids + float16 probs, K=8, npz "
        "shards with per-utterance offsets).",
    ]
    if step:
        lines += [
            "",
            f"## KD training step vs baseline (`{preset}` student, synthetic batch of 8 × 800 frames, 30 units; "
            "forward + backward + Adam, median of 5 interleaved steps)",
            "",
            "| variant | step time (s) | vs baseline |",
            "|---|---|---|",
        ]
        base = step["baseline (CE)"]
        for name, t in step.items():
            lines.append(f"| {name} | {t:.3f} | {100 * (t / base - 1):+.1f}% |")
    lines += [
        "",
        f"## Teacher perplexity on dev text ({n_dev} distinct dev sentences)",
        "",
        "| teacher | measure | value |",
        "|---|---|---|",
        f"| BERT | pseudo-perplexity (each token masked alone, sentence only) | {pppl:.2f} |",
        f"| Transformer LM | perplexity (left to right, <eos> included) | {lm_ppl:.2f} |",
        "",
        f"Command: `{command or 'kdasr teacher bench'}`",
        "",
    ]
    text = "\n".join(lines)
    atomic_write_text(report, text)
    return text
