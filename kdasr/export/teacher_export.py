"""`kdasr export-lm`: the LM teacher (step graph) and the BERT teacher (PLL scoring graph) to ONNX,
with a torch parity check on several shapes.

The output directory (a model directory, or a folder of its own) gets `lm.onnx` + `lm.json` and/or
`bert.onnx` + `bert.json`; the JSON names the graph's inputs/outputs, special ids, state layout and
variants (`int8`), like model.json does for the student."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError
from ..io_utils import atomic_write_bytes, atomic_write_text
from ..models.lm import TransformerLM
from ..text import Tokenizer
from .check import GraphCheck, check_on_dummy_inputs
from .onnx_export import export_graph
from .quantize import add_variants
from .teacher_graphs import BertScoreGraph, LMStepGraph

LM_CASES = [(1, 0), (4, 1), (7, 13), (2, 40)]  # (batch, past steps)
BERT_CASES = [(1, 3), (9, 12), (30, 25)]  # (rows, length)


def check_lm(graph: LMStepGraph, path: Path, seed: int = 0) -> GraphCheck:
    return check_on_dummy_inputs(graph, path, LM_CASES, path.stem, seed)


def check_bert(graph: BertScoreGraph, path: Path, seed: int = 0) -> GraphCheck:
    return check_on_dummy_inputs(graph, path, BERT_CASES, path.stem, seed)


def _describe(kind: str, graph, tok: Tokenizer, extra: dict) -> dict:
    return {
        "format_version": 1,
        "kind": kind,
        "vocab_size": tok.vocab_size,
        "special_ids": {"pad": tok.pad_id, "bos": tok.bos_id, "eos": tok.eos_id, "mask": tok.mask_id},
        "graphs": {kind: {"file": f"{kind}.onnx", "inputs": graph.input_names, "outputs": graph.output_names}},
        **extra,
    }


def export_teachers(
    out_dir: Path,
    lm_dir: Path | None = None,
    bert_dir: Path | None = None,
    check: bool = False,
    quantize: list[str] | tuple[str, ...] = (),
) -> list[GraphCheck]:
    from ..teachers.bert import load_bert_teacher

    if lm_dir is None and bert_dir is None:
        raise ModelError("export-lm: give --lm DIR and/or --bert DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    asr_tok = Tokenizer(out_dir / "tokenizer.model") if (out_dir / "tokenizer.model").is_file() else None
    checks: list[GraphCheck] = []
    if lm_dir is not None:
        lm, tok = load_lm(Path(lm_dir), asr_tok)
        graph = LMStepGraph(lm).eval()
        export_graph(graph, out_dir / "lm.onnx")
        c = lm.cfg
        desc = _describe("lm", graph, tok, {"cache": [c.layers, 2, "batch", c.heads, "past", c.d_model // c.heads]})
        desc["max_len"], desc["config"] = c.max_len, c.to_dict()
        checks += _finish(out_dir, "lm", desc, tok, quantize, check, lambda p: check_lm(graph, p))
        asr_tok = asr_tok or tok
    if bert_dir is not None:
        tok = asr_tok or Tokenizer(Path(bert_dir) / "tokenizer.model")
        teacher = load_bert_teacher(Path(bert_dir), tok)
        graph = BertScoreGraph(_eager(teacher.model), teacher.mask_id).eval()
        export_graph(graph, out_dir / "bert.onnx")
        desc = _describe("bert", graph, tok, {"window": teacher.window, "mask_id": teacher.mask_id})
        checks += _finish(out_dir, "bert", desc, tok, quantize, check, lambda p: check_bert(graph, p))
    return checks


def load_lm(path: Path, asr_tok: Tokenizer | None) -> tuple[TransformerLM, Tokenizer]:
    """An LM teacher: `lm.pt` (or a directory holding it), loaded without unpickling code."""
    from ..teachers.lm_train import load_lm_teacher

    return load_lm_teacher(path, asr_tok)


def _eager(model):
    """Plain attention (no SDPA kernels) traces into a clean graph."""
    model.config._attn_implementation = "eager"
    return model


def _finish(out_dir, kind, desc, tok, quantize, check, checker) -> list[GraphCheck]:
    if quantize:
        add_variants(out_dir, desc["graphs"], list(quantize))
    if not (out_dir / "tokenizer.model").is_file():
        atomic_write_bytes(out_dir / "tokenizer.model", tok.model_bytes)
    atomic_write_text(out_dir / f"{kind}.json", json.dumps(desc, indent=2) + "\n")
    if not check:
        return []
    entry = desc["graphs"][kind]
    out = [checker(out_dir / entry["file"])]
    if "int8" in entry:
        c = checker(out_dir / entry["int8"])
        out.append(GraphCheck(c.graph, c.max_error, c.cases, informational=True))
    return out
