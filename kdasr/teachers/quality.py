"""`kdasr teacher quality`: are the teachers worth distilling from? On the first N dev sentences,
beside count baselines computed here from the teacher text over the same units:

- BERT: pseudo-perplexity and masked top-1 (each unit masked alone, sentence-only input, full
  softmax), and how many distinct units it predicts (a collapsed teacher predicts one or two);
  compared with the masked unigram and the two-sided count model (kdasr.teachers.ngram);
- LM: perplexity (<eos> included) and next-unit top-1, compared with the unigram and bigram LMs;
- soft labels (optional, one or more folders from `kdasr teacher soft-labels` with the manifest
  they were made for): the share of tokens whose reference unit is the top-1 / in the stored top K.

A teacher "beats the baselines" when it is better than the best count model of its kind on both
figures; `passed` says whether every teacher given does (the CLI exits 1 otherwise with --strict).

Per word (kdasr.teachers.word_quality, `per_word` in the JSON): every dev word masked whole, BERT's
whole-word top-1 and first-unit top-1 / top-8 beside word-level and unit-level count baselines, with
its own verdict `passed_words` (None without --bert); `passed` and --strict are unit-level only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.manifest import read_manifest
from ..errors import KdasrError
from ..io_utils import atomic_write_text
from ..text import Tokenizer
from .common import read_documents
from .ngram import CountModels, Scores
from .storage import load_soft_labels, tokenizer_sha1
from .word_quality import render_word_table, word_section


@dataclass
class QualityReport:
    tokenizer: str
    vocab_size: int
    dev: str
    sentences: int
    teacher_text: str
    teacher_sentences: int
    baselines: dict[str, Scores]
    bert: dict | None = None
    lm: dict | None = None
    soft_labels: list[dict] = field(default_factory=list)
    passed: bool = True
    command: str = ""
    per_word: dict | None = None
    passed_words: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def dev_token_lists(dev: Path, tok: Tokenizer, limit: int) -> list[list[int]]:
    sents = [s for doc in read_documents(dev) for s in doc]
    if len(sents) < limit:
        raise KdasrError(f"{dev}: {len(sents)} usable sentences, fewer than the {limit} asked for")
    return [t for s in sents[:limit] if (t := tok.encode(s))]


def overlap_count(dev: Path, teacher_docs: list[list[str]]) -> int:
    """How many dev sentences occur verbatim in the teacher text (must be 0 for honest figures)."""
    teach = {s for doc in teacher_docs for s in doc}
    return sum(s in teach for doc in read_documents(dev) for s in doc)


@torch.no_grad()
def bert_quality(path: Path, teacher, dev: list[list[int]]) -> dict:
    from .bert import masked_scores
    from .mlm import masked_rows, run_masked_batches

    ppl, top1 = masked_scores(teacher, dev)
    rows = masked_rows([(tuple(t[: teacher.window]), range(min(len(t), teacher.window))) for t in dev])
    predicted = set()
    for _, logits in run_masked_batches(teacher.model, rows, 8192, teacher.mask_id):
        predicted.update(logits.argmax(-1).tolist())
    arch = getattr(teacher.model.config, "model_type", "?")
    out = {"path": str(path), "arch": arch, "pseudo_perplexity": ppl, "top1": top1, "distinct_top1": len(predicted)}
    info = Path(path) / "kdasr_teacher.json"  # a kdasr teacher says how long it trained (a hub model does not)
    if info.is_file():
        summary = json.loads(info.read_text()).get("summary", {})
        out["training"] = {k: summary[k] for k in ("steps", "train_seconds") if k in summary}
    return out


@torch.no_grad()
def lm_quality(path: Path, tok: Tokenizer, dev: list[list[int]]) -> dict:
    from .lm_train import lm_perplexity, load_lm_teacher, sentence_batch

    lm, _ = load_lm_teacher(path, tok)
    hits = count = 0
    for i in range(0, len(dev), 64):
        x, y = sentence_batch(dev[i : i + 64], tok, lm.cfg.max_len)
        keep = y != tok.pad_id
        hits += int(((lm(x).argmax(-1) == y) & keep).sum())
        count += int(keep.sum())
    return {"path": str(path), "perplexity": lm_perplexity(lm, dev, tok), "top1": hits / max(count, 1)}


def soft_label_quality(folder: Path, manifest: Path, tok: Tokenizer) -> dict:
    """Share of the manifest's tokens whose reference is the stored top-1 / in the stored top K."""
    store = load_soft_labels(folder)
    if store.meta.tokenizer_sha1 != tokenizer_sha1(tok.model_bytes):
        raise KdasrError(f"{folder}: soft labels were made with another tokenizer")
    top1 = topk = tokens = missing = 0
    for u in read_manifest(manifest):
        ref = np.array(tok.encode(u.text), dtype=np.int64)
        got = store.get(u.id)
        if got is None or len(got[0]) != len(ref):
            missing += 1
            continue
        ids = got[0]
        top1 += int((ids[:, 0] == ref).sum())
        topk += int((ids == ref[:, None]).any(axis=1).sum())
        tokens += len(ref)
    if tokens == 0:
        raise KdasrError(f"{folder}: no utterance of {manifest} has soft labels here")
    m = store.meta
    return {
        "path": str(folder),
        "teacher": m.teacher,
        "mode": m.mode,
        "k": m.top_k,
        "tokens": tokens,
        "utterances_without_labels": missing,
        "top1": top1 / tokens,
        "topk": topk / tokens,
    }


def run_quality(
    tokenizer: Path,
    dev: Path,
    teacher_text: Path,
    sentences: int = 200,
    bert: Path | None = None,
    lm: Path | None = None,
    soft_labels: list[Path] = (),
    train: Path | None = None,
    command: str = "",
) -> QualityReport:
    tok = Tokenizer(tokenizer)
    if soft_labels and train is None:
        raise KdasrError("--soft-labels needs --train (the manifest the labels were made for)")
    teacher_docs = read_documents(teacher_text)
    overlap = overlap_count(dev, teacher_docs)
    if overlap:
        raise KdasrError(f"{teacher_text}: holds {overlap} sentences of {dev}; dev figures would be inflated")
    dev_toks = dev_token_lists(dev, tok, sentences)
    teach = [t for doc in teacher_docs for s in doc if (t := tok.encode(s))]
    counts = CountModels(teach, tok.vocab_size)
    baselines = {
        "masked unigram": counts.score_masked_unigram(dev_toks),
        "two-sided count (l, r)": counts.score_two_sided(dev_toks),
        "unigram LM": counts.score_lm_unigram(dev_toks),
        "bigram LM": counts.score_bigram(dev_toks),
    }
    rep = QualityReport(
        str(tokenizer), tok.vocab_size, str(dev), len(dev_toks), str(teacher_text), len(teach), baselines
    )
    rep.command = command
    masked_bar = [baselines["masked unigram"], baselines["two-sided count (l, r)"]]
    lm_bar = [baselines["unigram LM"], baselines["bigram LM"]]
    teacher = None
    if bert is not None:
        from .bert import load_bert_teacher

        teacher = load_bert_teacher(bert, tok)
        rep.bert = bert_quality(bert, teacher, dev_toks)
        rep.bert["beats_baselines"] = _beats(rep.bert, masked_bar)
        rep.passed &= rep.bert["beats_baselines"]
    rep.per_word = word_section(tok, teach, dev_toks, counts, teacher)
    if rep.per_word["bert"] is not None:
        rep.passed_words = rep.per_word["bert"]["beats_baselines"]
    if lm is not None:
        rep.lm = lm_quality(lm, tok, dev_toks)
        rep.lm["beats_baselines"] = _beats(rep.lm, lm_bar)
        rep.passed &= rep.lm["beats_baselines"]
    rep.soft_labels = [soft_label_quality(f, train, tok) for f in soft_labels]
    return rep


def _beats(figures: dict, bar: list[Scores]) -> bool:
    ppl = figures.get("pseudo_perplexity", figures.get("perplexity"))
    return ppl < min(b.perplexity for b in bar) and figures["top1"] > max(b.top1 for b in bar)


def render_markdown(rep: QualityReport) -> str:
    lines = [
        "## Teacher quality",
        "",
        f"Command: `{rep.command}`" if rep.command else "",
        "",
        f"Units: `{rep.tokenizer}` ({rep.vocab_size}). Dev: first {rep.sentences} sentences of `{rep.dev}`"
        f" (none of them in the teacher text: checked). Count models from `{rep.teacher_text}`"
        f" ({rep.teacher_sentences} sentences).",
        "",
        "| model | task | (pseudo-)perplexity | top-1 | beats count baselines |",
        "|---|---|---:|---:|---|",
    ]
    for name, s in rep.baselines.items():
        task = "masked unit" if name.startswith(("masked", "two")) else "next unit (LM)"
        lines.append(f"| {name} | {task} | {s.perplexity:.2f} | {s.top1:.1%} | (baseline) |")
    if rep.bert:
        b = rep.bert
        lines.append(
            f"| BERT ({b['arch']}) `{b['path']}` | masked unit | {b['pseudo_perplexity']:.2f} | {b['top1']:.1%} | "
            f"{'yes' if b['beats_baselines'] else '**no**'} ({b['distinct_top1']} distinct top-1 units) |"
        )
    if rep.lm:
        m = rep.lm
        lines.append(
            f"| LM `{m['path']}` | next unit (LM) | {m['perplexity']:.2f} | {m['top1']:.1%} | "
            f"{'yes' if m['beats_baselines'] else '**no**'} |"
        )
    if rep.soft_labels:
        lines += [
            "",
            "| soft labels | teacher / mode | tokens | reference top-1 | reference in top K |",
            "|---|---|---:|---:|---:|",
        ]
        for s in rep.soft_labels:
            lines.append(
                f"| `{s['path']}` | {s['teacher']} / {s['mode']} | {s['tokens']} | {s['top1']:.1%} | "
                f"{s['topk']:.1%} (K={s['k']}) |"
            )
    if rep.bert or rep.lm:
        verdict = "every teacher given beats" if rep.passed else "NOT every teacher given beats"
        lines += ["", f"Verdict: {verdict} the count baselines (on both perplexity and top-1, per unit)."]
    if rep.per_word is not None:
        name = f"BERT ({rep.bert['arch']}) `{rep.bert['path']}`" if rep.bert else "BERT"
        lines += render_word_table(rep.per_word, name)
    return "\n".join(lines) + "\n"


def write_report(rep: QualityReport, path: Path) -> None:
    atomic_write_text(path, render_markdown(rep))
    atomic_write_text(path.with_suffix(".json"), json.dumps(rep.to_dict(), indent=2) + "\n")
