"""`kdasr teacher ...` as library calls: train a teacher, write soft labels. The CLI only parses."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..data.manifest import read_manifest
from ..errors import KdasrError
from ..io_utils import atomic_write_text
from ..models.lm import LMConfig
from ..text import Tokenizer
from .bert import BertConfigLite, load_bert_teacher, masked_scores, save_bert_teacher, train_bert
from .common import TeacherTrainConfig, read_documents
from .finished import already_trained
from .lm_train import LM_FILE, lm_perplexity, load_lm_teacher, save_lm_teacher, train_lm
from .soft_labels import SoftLabelConfig, generate_soft_labels
from .storage import one_writer


def dev_sentences(path: Path | None, tok: Tokenizer, limit: int = 300) -> list[list[int]]:
    if path is None:
        return []
    sents = [s for doc in read_documents(path) for s in doc][:limit]
    return [t for s in sents if (t := tok.encode(s))]


def run_bert_teacher(
    text: Path,
    tokenizer: Path,
    out: Path,
    cfg: BertConfigLite,
    train_cfg: TeacherTrainConfig,
    dev: Path | None = None,
) -> dict:
    """Train (resuming from OUT/train_state.pt if there), log to OUT/train_log.csv, save into OUT."""
    tok = Tokenizer(tokenizer)
    docs = read_documents(text)
    dev_docs = read_documents(dev) if dev is not None else None
    model, summary = train_bert(docs, tok, cfg, train_cfg, state_dir=out, dev_docs=dev_docs)
    if (kept := already_trained(out, summary)) is not None:
        return kept
    dev_toks = dev_sentences(dev, tok)
    if dev_toks:
        from .bert import BertTeacher

        teacher = BertTeacher(model, cfg.window, tok.mask_id, str(out))
        ppl, top1 = masked_scores(teacher, dev_toks)
        summary["dev_pseudo_perplexity"], summary["dev_masked_top1"] = round(ppl, 3), round(top1, 4)
        summary["dev"] = str(dev)
    summary["text"] = str(text)
    save_bert_teacher(model, tok, cfg, out, summary)
    return summary


def run_lm_teacher(
    text: Path, tokenizer: Path, out: Path, cfg: LMConfig, train_cfg: TeacherTrainConfig, dev: Path | None = None
) -> dict:
    tok = Tokenizer(tokenizer)
    if cfg.vocab_size != tok.vocab_size:
        raise KdasrError(f"LM vocab {cfg.vocab_size} != tokenizer's {tok.vocab_size}")
    dev_toks = dev_sentences(dev, tok)
    lm, summary = train_lm(read_documents(text), tok, cfg, train_cfg, state_dir=out, dev_sents=dev_toks)
    if (kept := already_trained(out, summary)) is not None:
        return kept
    if dev_toks:
        summary["dev_perplexity"] = round(lm_perplexity(lm, dev_toks, tok), 3)
        summary["dev"] = str(dev)
    summary["text"] = str(text)
    save_lm_teacher(lm, tok, out, summary)
    return summary


def teacher_kind(path: Path) -> str:
    path = Path(path)
    if (path / LM_FILE).is_file() or path.suffix == ".pt":
        return "lm"
    if (path / "config.json").is_file():
        return "bert"
    raise KdasrError(f"{path}: neither an LM teacher (lm.pt) nor a masked-LM directory (config.json)")


def run_soft_labels(
    manifests: list[Path],
    tokenizer: Path,
    teacher: Path,
    out: Path,
    cfg: SoftLabelConfig,
    threads: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> dict:
    """Soft labels for every utterance of `manifests` (all of them in one folder, one meta.json),
    the teacher on `device` (the labels do not depend on it beyond rounding: meta.json omits it)."""
    if threads:
        torch.set_num_threads(threads)
    tok = Tokenizer(tokenizer)
    utts = [u for m in manifests for u in read_manifest(m)]
    kind = teacher_kind(teacher)
    model = load_bert_teacher(teacher, tok) if kind == "bert" else load_lm_teacher(teacher, tok)[0]
    (model.model if kind == "bert" else model).to(device)
    with one_writer(out), torch.inference_mode():
        stats = generate_soft_labels(utts, tok, model, kind, cfg, out, teacher_path=str(teacher), progress=progress)
        stats["tokens_per_second"] = round(stats["computed_tokens"] / max(stats["seconds"], 1e-9), 1)
        stats["device"] = device
        atomic_write_text(out / "summary.json", json.dumps({**stats, "manifests": [str(m) for m in manifests]},
                                                           indent=2))
    return stats
