"""`kdasr train-whisper`: fine-tune an imported whisper's decoder on a manifest, with CE or KD
(soft labels over whisper ids from `kdasr teacher soft-labels` with a whisper-tokenizer teacher),
its encoder frozen and its output cached; writes OUT/whisper.pt, which
`kdasr import-whisper SOURCE --weights OUT/whisper.pt` exports to the usual model dir.

Not (yet) the full `kdasr train`: no exact resume (a killed run starts again), no DDP, no
SpecAugment on the cached states; a run is a few hundred steps on a few hundred utterances."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio
from ..data.manifest import Utterance, read_training_manifest
from ..errors import AudioError, KdasrError
from ..io_utils import atomic_open
from ..models.torch_files import save_torch_file
from ..models.whisper_weights import CT2Checkpoint
from .whisper_student import WhisperStudent, make_batch, whisper_loss

CHECKPOINT = "whisper.pt"
KD_MODES = {"none": 0.0, "lm": 0.1, "bert": 0.1, "bert-context": 0.3}  # λ defaults, as `kdasr train`
KD_EXPECTS = {"lm": ("lm", "causal"), "bert": ("bert", "utterance"), "bert-context": ("bert", "context")}


@dataclass(frozen=True)
class WhisperFineTuneConfig:
    pad_30: bool = False  # the encoder input: padded to 30 s, or the utterance + tail_seconds of zero log-mel
    tail_seconds: float = 1.0
    lr: float = 1e-5  # peak (linear warmup, then constant)
    warmup_steps: int = 50
    batch_utts: int = 8
    steps: int | None = None
    minutes: float | None = None
    label_smoothing: float = 0.1
    kd: str = "none"
    kd_weight: float = 0.0
    kd_smoothing: float = 0.1
    train_embeddings: bool = False  # the tied token embedding / output layer (51k x width) and positions
    seed: int = 0
    threads: int | None = None
    log_every: int = 10
    dev_every: int = 100
    save_every_minutes: float = 5.0


def _encoder(ckpt: CT2Checkpoint):
    from ..models.config import ModelConfig
    from ..models.whisper_encoder import WHISPER_DIMS, WhisperEncoder
    from ..models.whisper_frontend import WhisperFrontend

    width = ckpt.get("encoder/position_encodings/encodings").shape[1]
    name = next((n for n, d in WHISPER_DIMS.items() if d.width == width), None)
    if name is None:
        raise KdasrError(f"a whisper of width {width}: only {', '.join(WHISPER_DIMS)} are supported")
    enc = WhisperEncoder(ModelConfig(vocab_size=8, encoder_type=name, d_model=width))
    enc.load_checkpoint(ckpt)
    return WhisperFrontend().eval(), enc.eval()


@torch.no_grad()
def encoder_memory(ckpt: CT2Checkpoint, utts: list[Utterance], cache_dir: Path, pad_30: bool, tail_seconds: float,
                   desc: str = "") -> dict[str, np.ndarray]:
    """The frozen encoder's output [T', width] (float16) per utterance, as the exported encoder graph
    computes it (export/whisper_graphs.WhisperEncoderGraph); cached in one .npz per set, named by a
    hash of the weights, the padding and the utterances."""
    key = hashlib.sha1(f"{ckpt.sha256}|{pad_30}|{tail_seconds}".encode())
    for u in utts:
        key.update(f"{u.id}|{u.audio}|{u.start}|{u.duration}\n".encode())
    path = Path(cache_dir) / f"enc-{key.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {str(uid): z[f"a{i}"] for i, uid in enumerate(z["ids"])}
    frontend, enc = _encoder(ckpt)
    tail = 0 if pad_30 else round(tail_seconds * 100)
    out, t0 = {}, time.time()
    for n, u in enumerate(utts, 1):
        try:
            wave = load_audio(u.audio, 16000, start=u.start, duration=u.duration)
        except AudioError as e:
            print(f"warning: skipping {u.id}: {e}")
            continue
        w = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
        feats, lens = frontend(w, torch.tensor([w.shape[1]]))
        if pad_30:
            feats = torch.cat([feats, torch.zeros(1, 3000, feats.shape[2])], dim=1)[:, :3000]
        elif tail:
            feats = torch.cat([feats, torch.zeros(1, tail, feats.shape[2])], dim=1)
        if feats.shape[1] > 3000:
            print(f"warning: skipping {u.id}: over 30 s with its tail")
            continue
        x, _ = enc(feats, torch.tensor([feats.shape[1]]))
        out[u.id] = x[0].numpy().astype(np.float16)
        if n % 50 == 0:
            print(f"{desc} encoder: {n}/{len(utts)} utterances, {time.time() - t0:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez(f, ids=np.array(list(out), dtype=str), **{f"a{i}": a for i, a in enumerate(out.values())})
    return out


def attach_soft_labels(ids: list[str], texts: list[list[int]], soft_dir: Path, kd: str, tokenizer_sha1: str):
    """Per example its soft-label rows over whisper ids (None where missing or misaligned)."""
    from ..teachers.storage import load_soft_labels

    sl = load_soft_labels(soft_dir)
    if (sl.meta.teacher, sl.meta.mode) != KD_EXPECTS[kd]:
        raise KdasrError(f"--kd {kd} needs {KD_EXPECTS[kd][0]} soft labels in {KD_EXPECTS[kd][1]} mode; "
                         f"{soft_dir} holds {sl.meta.teacher} labels in {sl.meta.mode} mode")
    if sl.meta.tokenizer_sha1 != tokenizer_sha1:
        raise KdasrError(f"{soft_dir}: soft labels not over this whisper's tokens (made with another tokenizer; "
                         "train the teacher with --tokenizer whisper:NAME)")
    rows = [r if (r := sl.rows.get(i)) is not None and r[0].shape[0] == len(t) else None for i, t in zip(ids, texts)]
    if all(r is None for r in rows):
        raise KdasrError(f"{soft_dir}: no soft labels for any training utterance (made for another manifest?)")
    return rows, {"teacher_path": sl.meta.teacher_path, "top_k": sl.meta.top_k, "temperature": sl.meta.temperature,
                  "utterances_without_soft_labels": sum(r is None for r in rows)}


class _Examples:
    def __init__(self, utts: list[Utterance], memory: dict[str, np.ndarray], bpe) -> None:
        kept = [u for u in utts if u.id in memory]
        self.ids = [u.id for u in kept]
        self.memory = [memory[u.id] for u in kept]
        self.tokens = [bpe.encode(u.text) for u in kept]
        self.soft = None


def run_whisper_training(train_manifest: Path, dev_manifest: Path, source: str, out_dir: Path,
                         cfg: WhisperFineTuneConfig, soft_labels: Path | None = None,
                         cache_dir: Path | None = None) -> Path:
    from ..teachers.whisper_vocab import WhisperBPE
    from ..whisper_reference import whisper_model_dir

    if cfg.kd not in KD_MODES:
        raise KdasrError(f"--kd must be one of {', '.join(KD_MODES)}, got {cfg.kd!r}")
    if cfg.kd != "none" and soft_labels is None:
        raise KdasrError(f"--kd {cfg.kd} needs --soft-labels DIR (kdasr teacher soft-labels with a whisper teacher)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    ckpt = _read_source(source)
    bpe = WhisperBPE(whisper_model_dir(source) if source in ("tiny.en", "base") else source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {}
    for name, manifest in (("train", train_manifest), ("dev", dev_manifest)):
        utts, skipped = read_training_manifest(manifest, False)
        mem = encoder_memory(ckpt, utts, cache_dir or out_dir / "encoder-cache", cfg.pad_30, cfg.tail_seconds, name)
        sets[name] = _Examples(utts, mem, bpe)
    train, dev = sets["train"], sets["dev"]
    if not train.ids:
        raise KdasrError(f"{train_manifest}: no usable training utterances")
    kd_info = {}
    if cfg.kd != "none":
        train.soft, kd_info = attach_soft_labels(train.ids, train.tokens, soft_labels, cfg.kd, bpe.sha1)
    model = WhisperStudent(ckpt, cfg.train_embeddings)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    prompt = bpe.prompt(multilingual=ckpt.get("decoder/embeddings/weight").shape[0] >= 51865)  # whisper's rule
    summary = {"source": source, "train_manifest": str(train_manifest), "train_utterances": len(train.ids),
               "kd": cfg.kd, "kd_weight": cfg.kd_weight if cfg.kd != "none" else 0.0, **{f"kd_{k}": v for k, v in
               kd_info.items()}, "soft_labels": str(soft_labels) if soft_labels else None,
               "trainable_parameters": sum(p.numel() for p in params), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"whisper {source}: {summary['trainable_parameters'] / 1e6:.1f}M trainable decoder parameters; train "
          f"{len(train.ids)} utts, dev {len(dev.ids)}; kd {cfg.kd}" + (f" (lambda {cfg.kd_weight})" if cfg.kd != "none"
                                                                        else ""), flush=True)

    def dev_loss() -> float:
        model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(dev.ids), cfg.batch_utts):
                idx = range(i, min(i + cfg.batch_utts, len(dev.ids)))
                b = make_batch([dev.memory[j] for j in idx], [dev.tokens[j] for j in idx], prompt, bpe.eot)
                total += float(whisper_loss(model, b, 0.0)["loss"]) * len(idx)
                n += len(idx)
        model.train()
        return total / max(n, 1)

    log = out_dir / "train_log.csv"
    with log.open("w", newline="") as f:
        csv.writer(f).writerow(["step", "loss", "hard", "soft", "dev_ce", "lr", "elapsed_s"])

    def write_row(row: dict) -> None:
        with log.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in ("step", "loss", "hard", "soft", "dev_ce", "lr",
                                                             "elapsed_s")])

    first_dev = dev_loss() if dev.ids else float("nan")
    write_row({"step": 0, "dev_ce": f"{first_dev:.4f}", "elapsed_s": 0})
    print(f"step 0: dev CE {first_dev:.4f}", flush=True)
    rng = np.random.default_rng(cfg.seed)
    step, t0, last_save, order = 0, time.time(), time.time(), []
    model.train()
    while True:
        if (cfg.steps is not None and step >= cfg.steps) or (cfg.minutes is not None and
                                                             time.time() - t0 > cfg.minutes * 60):
            break
        if len(order) < cfg.batch_utts:
            order += list(rng.permutation(len(train.ids)))
        idx, order = order[: cfg.batch_utts], order[cfg.batch_utts :]
        soft = [train.soft[i] for i in idx] if train.soft is not None else None
        batch = make_batch([train.memory[i] for i in idx], [train.tokens[i] for i in idx], prompt, bpe.eot, soft)
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
        for g in opt.param_groups:
            g["lr"] = lr
        losses = whisper_loss(model, batch, cfg.label_smoothing, cfg.kd_weight if cfg.kd != "none" else 0.0,
                              cfg.kd_smoothing)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        row = {"step": step, "lr": f"{lr:.2e}", "elapsed_s": f"{time.time() - t0:.0f}",
               **{k: f"{float(v):.4f}" for k, v in losses.items()}}
        if cfg.dev_every and step % cfg.dev_every == 0 and dev.ids:
            row["dev_ce"] = f"{dev_loss():.4f}"
            print(f"step {step}: loss {row['loss']}, dev CE {row['dev_ce']}, {row['elapsed_s']} s", flush=True)
        if step % cfg.log_every == 0 or "dev_ce" in row:
            write_row(row)
        if time.time() - last_save > cfg.save_every_minutes * 60:
            _save(out_dir / CHECKPOINT, model, ckpt, source, cfg, summary, step, time.time() - t0)
            last_save = time.time()
    final_dev = dev_loss() if dev.ids else float("nan")
    write_row({"step": step, "dev_ce": f"{final_dev:.4f}", "elapsed_s": f"{time.time() - t0:.0f}"})
    summary |= {"steps": step, "train_seconds": round(time.time() - t0), "dev_ce_before": round(first_dev, 4),
                "dev_ce_after": round(final_dev, 4), "dev_manifest": str(dev_manifest)}
    print(f"stopped at step {step} after {time.time() - t0:.0f} s: dev CE {first_dev:.4f} -> {final_dev:.4f}")
    _save(out_dir / CHECKPOINT, model, ckpt, source, cfg, summary, step, time.time() - t0)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir / CHECKPOINT


def _read_source(source: str) -> CT2Checkpoint:
    from ..models.whisper_weights import SOURCES, parse_model_bin, read_whisper

    names = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}
    if source in names or source in SOURCES:
        return read_whisper(names.get(source, source))
    path = Path(source) / "model.bin"
    if not path.is_file():
        raise KdasrError(f"{source}: neither tiny.en nor base nor a CTranslate2 whisper folder (no model.bin)")
    data = path.read_bytes()
    ckpt = parse_model_bin(data, str(path))
    ckpt.sha256 = hashlib.sha256(data).hexdigest()
    return ckpt


def _save(path: Path, model: WhisperStudent, ckpt: CT2Checkpoint, source: str, cfg: WhisperFineTuneConfig,
          summary: dict, step: int, seconds: float) -> None:
    """Only the variables training changed (the decoder's layers; the embedding when trained)."""
    trained = {k: torch.from_numpy(v.copy()) for k, v in model.ct2_variables().items()
               if cfg.train_embeddings or not k.startswith(("decoder/embeddings", "decoder/position_encodings"))}
    save_torch_file(path, {"kind": "whisper-student", "source": source, "source_sha256": ckpt.sha256,
                           "encoder_input": {"pad_30": cfg.pad_30, "tail_seconds": cfg.tail_seconds},
                           "whisper_variables": trained, "config": dataclasses.asdict(cfg),
                           "summary": {**summary, "steps": step, "train_seconds": round(seconds)}})


def load_fine_tuned(path: Path, ckpt: CT2Checkpoint) -> dict:
    """Overlay a `kdasr train-whisper` checkpoint's variables on `ckpt` (the model it started from);
    returns the checkpoint's record (source, encoder input, training summary)."""
    from ..models.torch_files import load_torch_file

    payload = load_torch_file(path, "kdasr whisper fine-tune checkpoint")
    if payload.get("kind") != "whisper-student":
        raise KdasrError(f"{path}: not a `kdasr train-whisper` checkpoint (kind {payload.get('kind')!r})")
    if ckpt.sha256 and payload.get("source_sha256") and payload["source_sha256"] != ckpt.sha256:
        raise KdasrError(f"{path}: fine-tuned from another whisper ({payload['source']}, sha256 "
                         f"{payload['source_sha256'][:12]}) than this one ({ckpt.sha256[:12]})")
    for name, value in payload["whisper_variables"].items():
        old = ckpt.get(name)
        if tuple(old.shape) != tuple(value.shape):
            raise KdasrError(f"{path}: {name} is {tuple(value.shape)}, the model's is {tuple(old.shape)}")
        ckpt.variables[name] = value.numpy()
    return {k: payload[k] for k in ("source", "source_sha256", "encoder_input", "summary")}
