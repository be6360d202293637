"""Cheap training with a frozen pretrained encoder (issue 27 item 2): the frozen part's output is
computed once per utterance and cached, so a training step runs only what trains (the top layers
when some are fine-tuned, the frame-rate reduction, the decoder and the CTC head).

The cache is fp16 shards of SHARD_SIZE utterances, each written atomically and skipped when present,
so a killed run resumes where it stopped. It lives in a folder named by a hash of the frozen
part's weights and of everything else that decides its output (encoder type, number of frozen
layers, front end), so changed weights or settings never read a stale cache. Utterances are run
one at a time from their audio at full precision (fp32 front end, no padding: the encoder's
output does not depend on batching). Augmentation then masks the cached states themselves
(`mask_states`: time spans and channel bands, SpecAugment's masks at the encoder's width)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from ..audio import load_audio
from ..data.manifest import Utterance
from ..errors import AudioError, KdasrError
from ..io_utils import atomic_open, atomic_write_text, remove_orphan_temps
from ..models.student import Seq2SeqStudent
from .features import SHARD_SIZE, FeatureSet, _read_shard
from .specaugment import SpecAugmentConfig, spec_augment

FORMAT = "whisper-prefix-v1"
SHARD_NAME = re.compile(r"shard-[0-9a-f]{12}\.npz")


def check_cacheable(model: Seq2SeqStudent) -> None:
    enc = model.encoder
    if not hasattr(enc, "frozen_prefix") or enc.frozen_layers == 0:
        raise KdasrError(
            f"the encoder cache needs a frozen pretrained encoder part: encoder_type {model.cfg.encoder_type!r} "
            f"with whisper_trainable_layers {model.cfg.whisper_trainable_layers} freezes nothing "
            "(use a whisper encoder with whisper_trainable_layers 0 or N below its layer count)")


def prefix_model(model_cfg, weights: dict | None = None) -> Seq2SeqStudent:
    """The student whose frozen part fills the cache: with the weights the run starts from (a
    checkpoint's or --init-from's), else the pretrained encoder's packaged weights."""
    from ..models.student import build_model, load_pretrained

    model = build_model(model_cfg)
    if weights:
        model.load_state_dict(weights, strict=False)
    else:
        load_pretrained(model)
    check_cacheable(model)
    return model.eval()


def prefix_hash(model: Seq2SeqStudent) -> str:
    """Hash of what decides the cached states: the frozen part's weights and settings."""
    check_cacheable(model)
    enc = model.encoder
    h = hashlib.sha256(f"{FORMAT}|{enc.name}|frozen={enc.frozen_layers}|{model.frontend.cache_tag}".encode())
    frozen = ["conv1.", "conv2.", "positions", *(f"layers.{i}." for i in range(enc.frozen_layers))]
    if enc.trainable_layers == 0:
        frozen.append("norm.")
    for name, tensor in sorted(enc.state_dict().items()):
        if name.startswith(tuple(frozen)):
            h.update(name.encode())
            h.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _shard_key(utts: list[Utterance]) -> str:
    h = hashlib.sha1()
    for u in utts:
        h.update(f"{u.id}|{u.audio}|{u.start}|{u.duration}\n".encode())
    return h.hexdigest()[:12]


@torch.no_grad()
def encode_prefix(model: Seq2SeqStudent, wave: np.ndarray) -> np.ndarray:
    """One utterance's frozen-part states, [T', width] float16."""
    w = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    feats, lens = model.frontend(w, torch.tensor([w.shape[1]]))
    states, _ = model.encoder.frozen_prefix(feats, lens)
    return states[0].numpy().astype(np.float16)


def _compute(model: Seq2SeqStudent, utts: list[Utterance], sample_rate: int) -> dict[str, np.ndarray]:
    out = {}
    for u in utts:
        try:
            wave = load_audio(u.audio, sample_rate, start=u.start, duration=u.duration)
            out[u.id] = encode_prefix(model, wave)
        except (AudioError, ValueError) as e:  # unreadable, or too long for the encoder: skip, say why
            print(f"warning: skipping {u.id}: {e}")
    return out


def _add_build_time(folder: Path, utterances: int, seconds: float) -> None:
    """folder/build.json: the wall seconds spent computing its shards, summed over resumed runs (what
    the cache cost, reported beside the training minutes it saves)."""
    path = folder / "build.json"
    try:
        had = json.loads(path.read_text())
    except (OSError, ValueError):
        had = {}
    doc = {"utterances": int(had.get("utterances", 0)) + utterances,
           "seconds": round(float(had.get("seconds", 0.0)) + seconds, 1), "threads": torch.get_num_threads()}
    atomic_write_text(path, json.dumps(doc) + "\n")


def compute_encoder_cache(
    utts: list[Utterance], cache_dir: Path, model: Seq2SeqStudent, desc: str = "encoder cache"
) -> tuple[FeatureSet, Path]:
    """The frozen part's states for every utterance (cached under cache_dir/<prefix hash>/), as a
    FeatureSet whose arrays are [T', width] float16; and the folder they are in."""
    model.eval()
    folder = Path(cache_dir) / f"enc-{prefix_hash(model)}"
    folder.mkdir(parents=True, exist_ok=True)
    remove_orphan_temps(folder, SHARD_NAME.fullmatch)  # a killed run's half-written shard (only ours)
    shards = [utts[i : i + SHARD_SIZE] for i in range(0, len(utts), SHARD_SIZE)]
    result: dict[str, np.ndarray] = {}
    with Progress() as progress:
        task = progress.add_task(desc, total=len(utts))
        for shard in shards:
            path = folder / f"shard-{_shard_key(shard)}.npz"
            if not path.exists():
                t0 = time.perf_counter()
                arrays = _compute(model, shard, model.cfg.sample_rate)
                try:
                    with atomic_open(path, "wb") as f:
                        np.savez(f, ids=np.array(list(arrays), dtype=str),
                                 **{f"a{i}": a for i, a in enumerate(arrays.values())})
                except OSError as e:  # a full disk: one line; atomic_open left no partial shard
                    raise KdasrError(f"cannot write the encoder cache {path}: {e.strerror or e}") from None
                _add_build_time(folder, len(shard), time.perf_counter() - t0)
            result.update(_read_shard(path))  # the feature cache's checked reader: never unpickles
            progress.advance(task, len(shard))
    ids = [u.id for u in utts if u.id in result]
    return FeatureSet(ids, [result[i] for i in ids]), folder


def mask_states(states: torch.Tensor, lens: torch.Tensor, cfg: SpecAugmentConfig, gen: torch.Generator,
                n_mels: int = 80) -> torch.Tensor:
    """SpecAugment's masks on cached encoder states [B, T', D]: time masks as on features (a share
    of each utterance), channel masks as wide a share of D as the frequency masks are of the mels."""
    width = max(1, round(cfg.freq_width * states.shape[-1] / n_mels))
    return spec_augment(states, lens, dataclasses.replace(cfg, freq_width=width), gen)


def step_seconds(model: Seq2SeqStudent, waves: list[np.ndarray], tokens: list[list[int]], repeats: int = 3,
                 cached: bool = False) -> float:
    """Best wall time of one training step (forward, backward, optimiser) on these utterances:
    from the cached states when `cached`, else from the features (the frozen part runs too)."""
    from ..models.encoder import padding_mask
    from .losses import ctc_loss, label_smoothed_ce

    model.train()
    with torch.no_grad():
        lens = torch.tensor([len(w) for w in waves])
        wave = torch.zeros(len(waves), int(lens.max()))
        for i, w in enumerate(waves):
            wave[i, : len(w)] = torch.from_numpy(w)
        x, x_lens = model.frontend(wave, lens)
        if cached:
            x, x_lens = model.encoder.frozen_prefix(x, x_lens)
    u, t_lens = max(len(t) for t in tokens), torch.tensor([len(t) for t in tokens])
    tin = torch.zeros(len(tokens), u + 1, dtype=torch.long)
    tgt = torch.zeros(len(tokens), u + 1, dtype=torch.long)
    for i, t in enumerate(tokens):
        tin[i, 1 : len(t) + 1], tgt[i, : len(t)] = torch.tensor(t), torch.tensor(t)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    old_kind = model.input_kind
    model.input_kind = "encoder_prefix" if cached else "features"
    best = float("inf")
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            memory, m_lens = model.encode_features(x, x_lens)
            logits = model.decoder(memory, padding_mask(m_lens, memory.shape[1]), tin)
            ctc = ctc_loss(model.ctc_head(memory), m_lens, tin[:, 1:], t_lens, 0)
            loss = 0.7 * label_smoothed_ce(logits, tgt, 0, 0.1) + 0.3 * ctc  # the trainer's loss, CE + CTC
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            best = min(best, time.perf_counter() - t0)
    finally:
        model.input_kind = old_kind
    return best
