"""Teachers over whisper's token ids, for distilling into a whisper student (issue 29 item 5).

`kdasr teacher bert TEXT --tokenizer whisper:tiny.en` trains the same masked LM as for kdasr's
own students (teachers/bert.py, unchanged) over the compact vocabulary of the text's whisper ids
(whisper_vocab.CompactVocab); the teacher dir holds the Hugging Face model, the compact
vocabulary (whisper_compact_vocab.json: the whisper ids and the sha1 of the tokenizer.json) and
kdasr_teacher.json. `kdasr teacher lm` does the same for the causal LM teacher (lm.pt).
`kdasr teacher soft-labels ... --teacher DIR` then writes soft labels whose top-K ids are whisper
ids (meta.json: vocab_size whisper's, tokenizer_sha1 of its tokenizer.json), which
`kdasr train-whisper --kd ...` attaches to the student's targets position by position.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.manifest import read_manifest
from ..errors import KdasrError, ModelError
from ..io_utils import atomic_write_text
from .bert import TEACHER_JSON, BertConfigLite, BertTeacher, _refuse_pickled_weights, masked_scores, train_bert
from .common import TeacherTrainConfig, read_documents
from .finished import already_trained
from .soft_labels import SoftLabelConfig, generate_soft_labels
from .storage import SoftLabelMeta, load_soft_labels, prepare_dir, shard_path, write_shard
from .whisper_vocab import COMPACT_FILE, CompactVocab, WhisperBPE

LM_FILE = "lm.pt"


def is_whisper_teacher(path: Path) -> bool:
    return (Path(path) / COMPACT_FILE).is_file()


def _vocab_for(text: Path, tokenizer: str, dev: Path | None) -> tuple[list[list[str]], CompactVocab]:
    bpe = WhisperBPE(tokenizer)
    docs = read_documents(text)
    # the teacher's text decides the vocabulary; dev text is scored with it (unseen ids: unk)
    return docs, CompactVocab.from_texts(bpe, (s for d in docs for s in d))


def _dev_tokens(dev: Path | None, vocab: CompactVocab, limit: int = 300) -> list[list[int]]:
    if dev is None:
        return []
    return [t for s in [s for d in read_documents(dev) for s in d][:limit] if (t := vocab.encode(s))]


def _replace_dir(out: Path, fill) -> None:
    """Write a teacher dir beside `out`, then move its files in (config/lm file last), as
    save_bert_teacher does: a reader never sees a half-written teacher."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        fill(tmp)
        last = ("config.json", LM_FILE)
        for f in sorted(tmp.iterdir(), key=lambda f: f.name in last):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_whisper_bert_teacher(text: Path, tokenizer: str, out: Path, cfg: BertConfigLite,
                             train_cfg: TeacherTrainConfig, dev: Path | None = None) -> dict:
    docs, vocab = _vocab_for(text, tokenizer, dev)
    dev_docs = read_documents(dev) if dev is not None else None
    model, summary = train_bert(docs, vocab, cfg, train_cfg, state_dir=out, dev_docs=dev_docs)
    if (kept := already_trained(out, summary)) is not None:
        return kept
    if dev_toks := _dev_tokens(dev, vocab):
        ppl, top1 = masked_scores(BertTeacher(model, cfg.window, vocab.mask_id, str(out)), dev_toks)
        summary |= {"dev_pseudo_perplexity": round(ppl, 3), "dev_masked_top1": round(top1, 4), "dev": str(dev)}
    summary |= {"text": str(text), "tokenizer": str(tokenizer), "compact_vocab": vocab.vocab_size}

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        vocab.save(tmp, str(tokenizer))
        info = {"kind": "bert-mlm", "arch": cfg.arch, "window": cfg.window, "mask_id": vocab.mask_id,
                "tokenizer": "whisper-compact", "summary": summary}
        (tmp / TEACHER_JSON).write_text(json.dumps(info, indent=2) + "\n")

    _replace_dir(Path(out), fill)
    return summary


def run_whisper_lm_teacher(text: Path, tokenizer: str, out: Path, size: tuple[int, int, int, int],
                           train_cfg: TeacherTrainConfig, dev: Path | None = None) -> dict:
    from ..models.lm import LMConfig
    from ..models.torch_files import save_torch_file
    from .lm_train import lm_perplexity, train_lm

    docs, vocab = _vocab_for(text, tokenizer, dev)
    layers, hidden, heads, ff = size
    cfg = LMConfig(vocab_size=vocab.vocab_size, d_model=hidden, layers=layers, heads=heads, ff_dim=ff)
    dev_toks = _dev_tokens(dev, vocab)
    lm, summary = train_lm(docs, vocab, cfg, train_cfg, state_dir=out, dev_sents=dev_toks)
    if (kept := already_trained(out, summary)) is not None:
        return kept
    if dev_toks:
        summary |= {"dev_perplexity": round(lm_perplexity(lm, dev_toks, vocab), 3), "dev": str(dev)}
    summary |= {"text": str(text), "tokenizer": str(tokenizer), "compact_vocab": vocab.vocab_size}

    def fill(tmp: Path) -> None:
        vocab.save(tmp, str(tokenizer))
        save_torch_file(tmp / LM_FILE, {"kind": "transformer-lm", "lm_config": lm.cfg.to_dict(),
                                        "model": {k: v.cpu() for k, v in lm.state_dict().items()},
                                        "tokenizer_model": vocab.model_bytes, "summary": summary})

    _replace_dir(Path(out), fill)
    return summary


def load_whisper_teacher(path: Path, bpe: WhisperBPE | None = None):
    """(teacher, kind "bert"|"lm", vocabulary) of a teacher dir written by this module."""
    path = Path(path)
    vocab = CompactVocab.load(path, bpe)
    if (path / LM_FILE).is_file():
        from ..models.lm import LMConfig, build_lm
        from ..models.torch_files import load_torch_file

        payload = load_torch_file(path / LM_FILE, "kdasr LM teacher")
        if payload.get("tokenizer_model") != vocab.model_bytes:
            raise ModelError(f"{path / LM_FILE}: trained over another vocabulary than {path / COMPACT_FILE}")
        lm = build_lm(LMConfig.from_dict(payload["lm_config"]))
        lm.load_state_dict(payload["model"])
        return lm.eval(), "lm", vocab
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: neither a BERT (config.json) nor an LM ({LM_FILE}) teacher")
    _refuse_pickled_weights(path)
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(path, use_safetensors=True)
    if model.config.vocab_size != vocab.vocab_size:
        raise ModelError(f"{path}: vocabulary {model.config.vocab_size} != its compact vocabulary's {vocab.vocab_size}")
    info = json.loads((path / TEACHER_JSON).read_text()) if (path / TEACHER_JSON).is_file() else {}
    window = int(info.get("window", getattr(model.config, "max_position_embeddings", 256)))
    return BertTeacher(model.eval(), window, vocab.mask_id, str(path)), "bert", vocab


def run_whisper_soft_labels(manifests: list[Path], tokenizer: str, teacher: Path, out: Path, cfg: SoftLabelConfig,
                            threads: int | None = None, progress: bool = True) -> dict:
    """Soft labels over whisper ids: computed over the teacher's compact ids (in OUT/compact/,
    resumable) and mapped to whisper ids shard by shard."""
    if threads:
        torch.set_num_threads(threads)
    bpe = WhisperBPE(tokenizer)
    model, kind, vocab = load_whisper_teacher(teacher, bpe)
    utts = [u for m in manifests for u in read_manifest(m)]
    out = Path(out)
    with torch.inference_mode():
        stats = generate_soft_labels(utts, vocab, model, kind, cfg, out / "compact", teacher_path=str(teacher),
                                     progress=progress)
    compact = load_soft_labels(out / "compact")
    m = compact.meta
    prepare_dir(out, SoftLabelMeta(m.teacher, m.mode, m.top_k, m.temperature, m.window, bpe.vocab_size, bpe.sha1,
                                   str(teacher), amp=m.amp))
    to_whisper = vocab.to_whisper()
    rows = {uid: (to_whisper[ids], probs) for uid, (ids, probs) in compact.rows.items()}
    uids = list(rows)
    for old in out.glob("shard-*.npz"):
        old.unlink()
    for i in range(0, max(len(uids), 1), cfg.shard_size):
        write_shard(shard_path(out, i // cfg.shard_size), {u: rows[u] for u in uids[i : i + cfg.shard_size]},
                    bpe.vocab_size)
    if any(np.any(ids == bpe.eot) for ids, _ in rows.values()):
        raise KdasrError(f"{out}: a soft label holds a special id (a bug: specials are excluded)")
    stats |= {"whisper_tokenizer": str(bpe.path), "compact_vocab": vocab.vocab_size}
    atomic_write_text(out / "summary.json", json.dumps({**stats, "manifests": [str(p) for p in manifests]}, indent=2))
    return stats
