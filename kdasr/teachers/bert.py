"""The BERT teacher: a transformers masked LM (masked LM only: no NSP, no CLS/SEP) on the ASR's
sentencepiece units, pretrained on `window`-token windows over whole documents.

Two architectures (`BertConfigLite.arch`):
- "modernbert" (default): `ModernBertForMaskedLM` — pre-norm, rotary positions, GeGLU, global
  attention in every layer. It learns on the demo text: it leaves the unigram plateau after a few
  hundred steps (eval/reports/teacher-quality.md).
- "bert": the original post-norm `BertForMaskedLM` with learned absolute positions, as in the
  paper. At the demo's sizes, batch and one CPU thread it sits on the unigram plateau for
  thousands of steps (an optimisation problem, not a masking or wiring defect: the same data
  pipeline trains ModernBERT, and `tests/test_teacher_learns.py` trains both on a toy).

A teacher directory is what `save_pretrained` writes plus `tokenizer.model` (the ASR units) and
`kdasr_teacher.json` (window, mask id). `load_bert_teacher` also accepts any local Hugging Face
masked-LM directory whose `tokenizer.model` is the ASR tokenizer; anything else is refused with
the reason.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ModelError
from ..text import Tokenizer
from .common import TeacherTrainConfig
from .mlm import masked_rows, run_masked_batches
from .storage import tokenizer_sha1
from .train_loop import device_of, train_steps

TEACHER_JSON = "kdasr_teacher.json"


ARCHS = ("modernbert", "bert")


@dataclass(frozen=True)
class BertConfigLite:
    """BERT size (paper: 6 layers, 512 hidden, 8 heads) and architecture."""

    layers: int = 6
    hidden: int = 512
    heads: int = 8
    ff_dim: int = 2048  # "bert": the feed-forward width; "modernbert": 2/3 of it per GLU half (same parameters)
    window: int = 256
    dropout: float | None = None  # None: 0.1 for "bert", 0.0 for "modernbert" (the settings measured)
    arch: str = "modernbert"
    mask_prob: float = 0.15


def _shape(cfg: BertConfigLite, vocab_size: int) -> dict:
    """The Hugging Face config fields both architectures take alike."""
    return dict(vocab_size=vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                num_attention_heads=cfg.heads, max_position_embeddings=cfg.window)


def build_bert(cfg: BertConfigLite, vocab_size: int):
    if cfg.arch not in ARCHS:
        raise ModelError(f"unknown BERT architecture {cfg.arch!r} (one of {', '.join(ARCHS)})")
    if cfg.arch == "modernbert":
        return _build_modernbert(cfg, vocab_size)
    from transformers import BertConfig, BertForMaskedLM

    dropout = 0.1 if cfg.dropout is None else cfg.dropout
    hf = BertConfig(
        **_shape(cfg, vocab_size),
        intermediate_size=cfg.ff_dim,
        type_vocab_size=1,
        pad_token_id=0,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForMaskedLM(hf)


def _build_modernbert(cfg: BertConfigLite, vocab_size: int):
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    from ..text import BOS_ID, EOS_ID, PAD_ID

    dropout = 0.0 if cfg.dropout is None else cfg.dropout
    hf = ModernBertConfig(
        **_shape(cfg, vocab_size),
        intermediate_size=max(8, cfg.ff_dim * 2 // 3),
        layer_types=["full_attention"] * cfg.layers,  # global attention everywhere: windows are short
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        cls_token_id=BOS_ID,
        sep_token_id=EOS_ID,
        embedding_dropout=dropout,
        mlp_dropout=dropout,
        attention_dropout=dropout,
    )
    return ModernBertForMaskedLM(hf)


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
    docs: list[list[str]],
    tok: Tokenizer,
    cfg: BertConfigLite,
    train_cfg: TeacherTrainConfig,
    short_prob: float = 0.3,
    state_dir: Path | None = None,
    dev_docs: list[list[str]] | None = None,
):
    """Train (or resume, when state_dir holds a checkpoint of the same settings) a BERT teacher."""
    torch.manual_seed(train_cfg.seed)
    rng = random.Random(train_cfg.seed)
    doc_tokens = [d for d in document_tokens(docs, tok) if d]
    model = build_bert(cfg, tok.vocab_size)

    def next_loss(step: int) -> torch.Tensor:
        ids, att, labels = mlm_batch(
            sample_windows(doc_tokens, train_cfg.batch_size, cfg.window, rng, short_prob), tok, rng, cfg.mask_prob
        )
        dev = device_of(model)
        return model(input_ids=ids.to(dev), attention_mask=att.to(dev), labels=labels.to(dev)).loss

    dev_batches = _fixed_dev_batches(dev_docs or [], tok, cfg, short_prob)

    @torch.no_grad()
    def dev_loss() -> float:
        dev = device_of(model)
        losses = [
            float(model(input_ids=i.to(dev), attention_mask=a.to(dev), labels=y.to(dev)).loss)
            for i, a, y in dev_batches
        ]
        return sum(losses) / len(losses)

    identity = {
        "teacher": "bert",
        "config": asdict(cfg),
        "tokenizer_sha1": tokenizer_sha1(tok.model_bytes),
        "batch_size": train_cfg.batch_size,
    }
    dev = dev_loss if dev_batches else None
    summary = train_steps(model, next_loss, train_cfg, f"BERT MLM ({cfg.arch})", rng, state_dir, identity, dev)
    return model, {**summary, "config": asdict(cfg), "documents": len(doc_tokens), "tokens": sum(map(len, doc_tokens))}


def _fixed_dev_batches(docs: list[list[str]], tok: Tokenizer, cfg: BertConfigLite, short_prob: float, n: int = 32):
    """The same masked dev windows at every evaluation (own rng: the training stream is untouched)."""
    doc_tokens = [d for d in document_tokens(docs, tok) if d]
    if not doc_tokens:
        return []
    rng = random.Random(1234)
    windows = sample_windows(doc_tokens, n, cfg.window, rng, short_prob)
    return [mlm_batch(windows[i : i + 16], tok, rng, cfg.mask_prob) for i in range(0, n, 16)]


def save_bert_teacher(model, tok: Tokenizer, cfg: BertConfigLite, out_dir: Path, summary: dict) -> None:
    """save_pretrained into a temp folder beside out_dir, then move the files in, config.json last
    and the old one removed first: a reader sees the old teacher, no teacher, or the new one, never
    a mix. Other files in out_dir (train_state.pt, train_log.csv) stay."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    (tmp / "tokenizer.model").write_bytes(tok.model_bytes)
    info = {"kind": "bert-mlm", "arch": cfg.arch, "window": cfg.window, "mask_id": tok.mask_id, "summary": summary}
    (tmp / TEACHER_JSON).write_text(json.dumps(info, indent=2) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").unlink(missing_ok=True)
    for f in sorted(tmp.iterdir(), key=lambda f: f.name == "config.json"):
        os.replace(f, out_dir / f.name)
    tmp.rmdir()


@dataclass
class BertTeacher:
    model: torch.nn.Module  # a transformers *ForMaskedLM in eval mode
    window: int
    mask_id: int
    path: str


PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _refuse_pickled_weights(path: Path) -> None:
    """Teacher weights are read from safetensors only: a pytorch_model.bin is a pickle, and
    unpickling runs whatever code the file names. Say so, instead of transformers' own advice."""
    names = sorted(p.name for p in path.iterdir())
    if any(n.endswith(".safetensors") for n in names):
        return
    pickled = [n for n in names if n.endswith(PICKLE_WEIGHTS)]
    if pickled:
        raise ModelError(
            f"{path}: refused: its weights are in {pickled[0]}, a pickle file, and unpickling can run code "
            "the file holds; kdasr reads teacher weights only from model.safetensors (what save_pretrained "
            "writes by default): re-save the model as safetensors from a copy you trust"
        )


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
    _refuse_pickled_weights(path)
    from transformers import AutoModelForMaskedLM

    try:
        model = AutoModelForMaskedLM.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load a masked LM ({e})") from e
    if model.config.vocab_size != tok.vocab_size:
        raise ModelError(f"{path}: vocabulary {model.config.vocab_size} != ASR tokenizer's {tok.vocab_size}")
    info = json.loads((path / TEACHER_JSON).read_text()) if (path / TEACHER_JSON).is_file() else {}
    window = int(info.get("window", getattr(model.config, "max_position_embeddings", 256)))
    return BertTeacher(model.eval(), window, int(info.get("mask_id", tok.mask_id)), str(path))


@torch.no_grad()
def masked_scores(teacher: BertTeacher, token_lists: list[list[int]], batch_tokens: int = 8192) -> tuple[float, float]:
    """(pseudo-perplexity, masked top-1 accuracy): each token masked on its own, full softmax;
    pseudo-perplexity = exp(mean over tokens of −log p(token | the rest))."""
    w = teacher.window  # longer sentences are scored in window-sized pieces
    pieces = [tuple(t[i : i + w]) for t in token_lists for i in range(0, len(t), w)]
    rows = masked_rows([(p, range(len(p))) for p in pieces], teacher.mask_id)
    total, count, correct = 0.0, 0, 0
    for batch_rows, logits in run_masked_batches(teacher.model, rows, batch_tokens, teacher.mask_id):
        logp = torch.log_softmax(logits.float(), dim=-1)
        target = torch.tensor([r.target for r in batch_rows])
        total += float(-logp.gather(1, target[:, None]).sum())
        correct += int((logp.argmax(-1) == target).sum())
        count += len(batch_rows)
    return math.exp(total / max(count, 1)), correct / max(count, 1)


def pseudo_perplexity(teacher: BertTeacher, token_lists: list[list[int]], batch_tokens: int = 8192) -> float:
    return masked_scores(teacher, token_lists, batch_tokens)[0]


@torch.no_grad()
def masked_distribution(model, tokens: list[int], position: int, mask_id: int) -> torch.Tensor:
    """The masked LM's distribution [V] at `position` of `tokens` with that position masked (the
    probe for a collapsed teacher: one that predicts the same distribution whatever the input)."""
    rows = [r for r in masked_rows([(tuple(tokens), range(len(tokens)))]) if r.position == position]
    ((_, logits),) = list(run_masked_batches(model, rows, 8192, mask_id))
    return torch.softmax(logits[0].float(), dim=-1)
