"""`kdasr export-lm`: the LM teacher (step graph) and the BERT teacher (PLL scoring graph) to ONNX,
with a torch parity check on several shapes.

The output directory (a model directory, or a folder of its own) gets `lm.onnx` + `lm.json` and/or
`bert.onnx` + `bert.json`: the teacher's spec (kdasr/spec/teacher_spec.py: graph names by role, special
ids, the LM's KV-cache state, variants), also stamped into each graph's metadata_props, like
model.json for the student."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..errors import ModelError
from ..io_utils import atomic_write_bytes, atomic_write_text
from ..spec.graph_spec import GraphSpec, SpecialIds
from ..spec.teacher_spec import BertSpec, LMSpec, metadata
from ..text import Tokenizer
from .check import GraphCheck, check_on_dummy_inputs
from .model_dir import stamp_metadata
from .onnx_export import export_graph
from .quantize import add_variants
from .teacher_graphs import BertScoreGraph, LMStepGraph

LM_CASES = [(1, 0), (4, 1), (7, 13), (2, 40)]  # (batch, past steps)
BERT_CASES = [(1, 3), (9, 12), (30, 25)]  # (rows, length)


def check_lm(graph: LMStepGraph, path: Path, seed: int = 0) -> GraphCheck:
    return check_on_dummy_inputs(graph, path, LM_CASES, path.stem, seed)


def check_bert(graph: BertScoreGraph, path: Path, seed: int = 0) -> GraphCheck:
    return check_on_dummy_inputs(graph, path, BERT_CASES, path.stem, seed)


def _graph(kind: str, graph) -> GraphSpec:
    return GraphSpec({"fp32": f"{kind}.onnx"}, tuple(graph.input_names), tuple(graph.output_names))


def lm_spec(graph: LMStepGraph, tok: Tokenizer) -> LMSpec:
    c = graph.lm.cfg
    ids = SpecialIds.of_tokenizer(tok)
    return LMSpec(tok.vocab_size, ids, _graph("lm", graph), (graph.state_tensor(),), "tokens", "logprobs",
                  max_len=c.max_len, config=c.to_dict())


def bert_spec(graph: BertScoreGraph, tok: Tokenizer, window: int, mask_id: int) -> BertSpec:
    return BertSpec(tok.vocab_size, SpecialIds.of_tokenizer(tok), _graph("bert", graph), window, mask_id)


def export_teachers(
    out_dir: Path,
    lm_dir: Path | None = None,
    bert_dir: Path | None = None,
    check: bool = False,
    quantize: list[str] | tuple[str, ...] = (),
) -> list[GraphCheck]:
    from ..teachers.bert import load_bert_teacher
    from ..teachers.lm_train import load_lm_teacher

    if lm_dir is None and bert_dir is None:
        raise ModelError("export-lm: give --lm DIR and/or --bert DIR")
    out_dir.mkdir(parents=True, exist_ok=True)
    asr_tok = Tokenizer(out_dir / "tokenizer.model") if (out_dir / "tokenizer.model").is_file() else None
    checks: list[GraphCheck] = []
    if lm_dir is not None:
        lm, tok = load_lm_teacher(Path(lm_dir), asr_tok)  # the one LM loader
        graph = LMStepGraph(lm).eval()
        export_graph(graph, out_dir / "lm.onnx")
        checks += _finish(out_dir, lm_spec(graph, tok), tok, quantize, check, lambda p: check_lm(graph, p))
        asr_tok = asr_tok or tok
    if bert_dir is not None:
        tok = asr_tok or Tokenizer(Path(bert_dir) / "tokenizer.model")
        teacher = load_bert_teacher(Path(bert_dir), tok)
        graph = BertScoreGraph(_eager(teacher.model), teacher.mask_id).eval()
        export_graph(graph, out_dir / "bert.onnx")
        spec = bert_spec(graph, tok, teacher.window, teacher.mask_id)
        checks += _finish(out_dir, spec, tok, quantize, check, lambda p: check_bert(graph, p))
    return checks


def _eager(model):
    """Plain attention (no SDPA kernels) traces into a clean graph."""
    model.config._attn_implementation = "eager"
    return model


def _finish(out_dir, spec: LMSpec | BertSpec, tok, quantize, check, checker) -> list[GraphCheck]:
    """Variants, tokenizer, the spec stamped into every graph file, then <kind>.json (parsed back
    first: what is written is what the runtime reads)."""
    kind = "lm" if isinstance(spec, LMSpec) else "bert"
    if quantize:
        spec = replace(spec, graph=add_variants(out_dir, {kind: spec.graph}, list(quantize))[kind])
    if not (out_dir / "tokenizer.model").is_file():
        atomic_write_bytes(out_dir / "tokenizer.model", tok.model_bytes)
    json_path = out_dir / f"{kind}.json"
    spec = type(spec).from_dict(spec.to_dict(), str(json_path))
    for file in spec.graph.files.values():
        stamp_metadata(out_dir / file, metadata(spec))
    atomic_write_text(json_path, json.dumps(spec.to_dict(), indent=2) + "\n")
    if not check:
        return []
    out = [checker(out_dir / spec.graph.file)]
    if "int8" in spec.graph.files:
        c = checker(out_dir / spec.graph.files["int8"])
        out.append(GraphCheck(c.graph, c.max_error, c.cases, informational=True))
    return out
