"""The BERT teacher: a transformers BertForMaskedLM (masked LM only: no NSP, no CLS/SEP) on the
ASR's sentencepiece units, pretrained on `window`-token windows over whole documents.

A teacher directory is what `save_pretrained` writes plus `tokenizer.model` (the ASR units) and
`kdasr_teacher.json` (window, mask id). `load_bert_teacher` also accepts any local Hugging Face
masked-LM directory whose `tokenizer.model` is the ASR tokenizer; anything else is refused with
the reason.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ModelError
from ..text import Tokenizer
from .common import TeacherTrainConfig, train_steps
from .storage import tokenizer_sha1

TEACHER_JSON = "kdasr_teacher.json"


@dataclass(frozen=True)
class BertConfigLite:
    """BERT size (paper: 6 layers, 512 hidden, 8 heads)."""

    layers: int = 6
    hidden: int = 512
    heads: int = 8
    ff_dim: int = 2048
    window: int = 256
    dropout: float = 0.1


def build_bert(cfg: BertConfigLite, vocab_size: int):
    from transformers import BertConfig, BertForMaskedLM

    hf = BertConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.ff_dim,
        max_position_embeddings=cfg.window,
        type_vocab_size=1,
        pad_token_id=0,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
    )
    return BertForMaskedLM(hf)


def document_tokens(docs: list[list[str]], tok: Tokenizer) -> list[list[int]]:
    return [[t for s in doc for t in tok.encode(s)] for doc in docs]


def sample_windows(
    docs: list[list[int]], n: int, window: int, rng: random.Random, short_prob: float
) -> list[list[int]]:
    """n random windows: a random `window`-token span of a random document (weighted by length),
    or with probability short_prob a shorter span (so utterance-only inputs are in-domain too)."""
    weights = [len(d) for d in docs]
    out = []
    for doc in rng.choices(docs, weights=weights, k=n):
        length = window if rng.random() >= short_prob else rng.randint(4, window)
        length = min(length, len(doc))
        start = rng.randint(0, len(doc) - length)
        out.append(doc[start : start + length])
    return out


def mlm_batch(windows: list[list[int]], tok: Tokenizer, rng: random.Random, mask_prob: float = 0.15):
    """BERT masking: mask_prob of the tokens are predicted; of those 80% <mask>, 10% random, 10% kept."""
    width = max(len(w) for w in windows)
    ids = torch.full((len(windows), width), tok.pad_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    for b, w in enumerate(windows):
        row = list(w)
        for i in range(len(w)):
            if rng.random() >= mask_prob:
                continue
            labels[b, i] = w[i]
            r = rng.random()
            if r < 0.8:
                row[i] = tok.mask_id
            elif r < 0.9:
                row[i] = rng.randrange(5, tok.vocab_size)
        ids[b, : len(w)] = torch.tensor(row)
    return ids, (ids != tok.pad_id).long(), labels


def train_bert(
    docs: list[list[str]], tok: Tokenizer, cfg: BertConfigLite, train_cfg: TeacherTrainConfig, short_prob: float = 0.3
):
    torch.manual_seed(train_cfg.seed)
    rng = random.Random(train_cfg.seed)
    doc_tokens = [d for d in document_tokens(docs, tok) if d]
    model = build_bert(cfg, tok.vocab_size)

    def next_loss(step: int) -> torch.Tensor:
        ids, att, labels = mlm_batch(
            sample_windows(doc_tokens, train_cfg.batch_size, cfg.window, rng, short_prob), tok, rng
        )
        return model(input_ids=ids, attention_mask=att, labels=labels).loss

    summary = train_steps(model, next_loss, train_cfg, "BERT MLM")
    return model, {**summary, "config": asdict(cfg), "documents": len(doc_tokens), "tokens": sum(map(len, doc_tokens))}


def save_bert_teacher(model, tok: Tokenizer, cfg: BertConfigLite, out_dir: Path, summary: dict) -> None:
    """save_pretrained into a temp folder beside out_dir, then swap it in (no half-written teacher)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    (tmp / "tokenizer.model").write_bytes(tok.model_bytes)
    info = {"kind": "bert-mlm", "window": cfg.window, "mask_id": tok.mask_id, "summary": summary}
    (tmp / TEACHER_JSON).write_text(json.dumps(info, indent=2) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


@dataclass
class BertTeacher:
    model: torch.nn.Module  # a transformers *ForMaskedLM in eval mode
    window: int
    mask_id: int
    path: str


def load_bert_teacher(path: Path, tok: Tokenizer) -> BertTeacher:
    """Load a masked-LM directory and check it speaks the ASR's units."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a Hugging Face model directory (no config.json)")
    spm_path = path / "tokenizer.model"
    if not spm_path.is_file():
        raise ModelError(
            f"{path}: no tokenizer.model; the teacher must use the ASR's sentencepiece units "
            f"(copy the ASR tokenizer there only if the model was trained with it)"
        )
    if tokenizer_sha1(spm_path.read_bytes()) != tokenizer_sha1(tok.model_bytes):
        try:
            other = Tokenizer(spm_path)
            same = other.vocab_size == tok.vocab_size and all(
                other.id_to_piece(i) == tok.id_to_piece(i) for i in range(tok.vocab_size)
            )
        except ModelError:
            same = False
        if not same:
            raise ModelError(f"{path}: tokenizer.model differs from the ASR tokenizer; soft labels need the same units")
    from transformers import AutoModelForMaskedLM

    try:
        model = AutoModelForMaskedLM.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load a masked LM ({e})") from e
    if model.config.vocab_size != tok.vocab_size:
        raise ModelError(f"{path}: vocabulary {model.config.vocab_size} != ASR tokenizer's {tok.vocab_size}")
    info = json.loads((path / TEACHER_JSON).read_text()) if (path / TEACHER_JSON).is_file() else {}
    window = int(info.get("window", getattr(model.config, "max_position_embeddings", 256)))
    return BertTeacher(model.eval(), window, int(info.get("mask_id", tok.mask_id)), str(path))


@torch.no_grad()
def pseudo_perplexity(teacher: BertTeacher, token_lists: list[list[int]], batch_tokens: int = 8192) -> float:
    """exp(mean over tokens of −log p(token | the rest)), each token masked on its own, full softmax."""
    from .soft_labels import masked_rows, run_masked_batches

    w = teacher.window  # longer sentences are scored in window-sized pieces
    pieces = [tuple(t[i : i + w]) for t in token_lists for i in range(0, len(t), w)]
    rows = masked_rows([(p, range(len(p))) for p in pieces], teacher.mask_id)
    total, count = 0.0, 0
    for batch_rows, logits in run_masked_batches(teacher.model, rows, batch_tokens):
        logp = torch.log_softmax(logits.float(), dim=-1)
        target = torch.tensor([r.target for r in batch_rows])
        total += float(-logp.gather(1, target[:, None]).sum())
        count += len(batch_rows)
    return math.exp(total / max(count, 1))
