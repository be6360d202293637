"""The LM teacher: train `kdasr.models.lm.TransformerLM` on teacher sentences (<bos> y <eos>),
save it as a directory with `lm.pt` (config + state dict + tokenizer bytes), load it back, and
measure perplexity. The same LM serves shallow fusion and rescoring (exported by kdasr/export)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import ModelError
from ..models.lm import LMConfig, TransformerLM, build_lm
from ..models.torch_files import load_torch_file, save_torch_file
from ..text import Tokenizer
from .common import TeacherTrainConfig
from .storage import tokenizer_sha1
from .train_loop import device_of, train_steps

LM_FILE = "lm.pt"


def sentence_batch(sents: list[list[int]], tok: Tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """inputs <bos> y, targets y <eos>, padded with pad (targets' pad is ignored)."""
    sents = [s[: max_len - 1] for s in sents]
    width = max(len(s) for s in sents) + 1
    x = torch.full((len(sents), width), tok.pad_id, dtype=torch.long)
    y = torch.full_like(x, tok.pad_id)
    for b, s in enumerate(sents):
        x[b, : len(s) + 1] = torch.tensor([tok.bos_id, *s])
        y[b, : len(s) + 1] = torch.tensor([*s, tok.eos_id])
    return x, y


def lm_loss(lm: TransformerLM, x: torch.Tensor, y: torch.Tensor, pad_id: int) -> torch.Tensor:
    dev = device_of(lm)
    logits = lm(x.to(dev))
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.to(dev).flatten(), ignore_index=pad_id)


def train_lm(
    docs: list[list[str]],
    tok: Tokenizer,
    cfg: LMConfig,
    train_cfg: TeacherTrainConfig,
    state_dir: Path | None = None,
    dev_sents: list[list[int]] | None = None,
) -> tuple[TransformerLM, dict]:
    """Train (or resume, when state_dir holds a checkpoint of the same settings) the LM teacher."""
    torch.manual_seed(train_cfg.seed)
    rng = random.Random(train_cfg.seed)
    sents = [t for doc in docs for s in doc if (t := tok.encode(s))]
    lm = build_lm(cfg)

    def next_loss(step: int) -> torch.Tensor:
        x, y = sentence_batch(rng.sample(sents, min(train_cfg.batch_size, len(sents))), tok, cfg.max_len)
        return lm_loss(lm, x, y, tok.pad_id)

    def dev_loss() -> float:
        return math.log(lm_perplexity(lm, dev_sents[:64], tok))

    identity = {"teacher": "lm", "config": asdict(cfg), "tokenizer_sha1": tokenizer_sha1(tok.model_bytes)}
    identity["batch_size"] = train_cfg.batch_size
    dev = dev_loss if dev_sents else None
    summary = train_steps(lm, next_loss, train_cfg, "Transformer LM", rng, state_dir, identity, dev)
    return lm, {**summary, "config": asdict(cfg), "sentences": len(sents)}


@torch.no_grad()
def lm_perplexity(lm: TransformerLM, sentences: list[list[int]], tok: Tokenizer, batch: int = 64) -> float:
    """Per-token perplexity on sentences, <eos> included."""
    was_training = lm.training
    lm.eval()
    total, count = 0.0, 0
    for i in range(0, len(sentences), batch):
        x, y = sentence_batch([s for s in sentences[i : i + batch] if s], tok, lm.cfg.max_len)
        logits = lm(x.to(device_of(lm))).float().cpu()
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), y.flatten(), ignore_index=tok.pad_id, reduction="sum"
        )
        total += float(nll)
        count += int((y != tok.pad_id).sum())
    lm.train(was_training)
    return math.exp(total / max(count, 1))


def save_lm_teacher(lm: TransformerLM, tok: Tokenizer, out_dir: Path, summary: dict) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": "transformer-lm",
        "lm_config": lm.cfg.to_dict(),
        "model": {k: v.cpu() for k, v in lm.state_dict().items()},  # loadable without the GPU it trained on
        "tokenizer_model": tok.model_bytes,
        "summary": summary,
    }
    save_torch_file(out_dir / LM_FILE, payload)
    (out_dir / "tokenizer.model").write_bytes(tok.model_bytes)
    return out_dir / LM_FILE


def load_lm_teacher(path: Path, tok: Tokenizer | None = None) -> tuple[TransformerLM, Tokenizer]:
    """Load `lm.pt` (or a directory holding it); with `tok`, refuse an LM trained on other units."""
    path = Path(path)
    file = path / LM_FILE if path.is_dir() else path
    if not file.is_file():
        raise ModelError(f"{path}: no {LM_FILE} (train one with `kdasr teacher lm`)")
    payload = load_torch_file(file, "kdasr LM teacher")
    try:
        lm = build_lm(LMConfig.from_dict(payload["lm_config"]))
        lm.load_state_dict(payload["model"])
        lm_tok = Tokenizer.from_bytes(payload["tokenizer_model"], str(file))
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ModelError(f"{file}: not a kdasr LM teacher ({type(e).__name__}: {first})") from None
    if tok is not None and lm_tok.model_bytes != tok.model_bytes:
        raise ModelError(f"{file}: the LM was trained with another tokenizer than the ASR's")
    return lm.eval(), lm_tok
