"""Write a model directory (DESIGN.md §3): ONNX graphs, tokenizer.model and model.json, with the
same spec stamped into each graph's metadata_props so a lone .onnx file still describes itself.

The spec (kdasr/spec/modelspec.py ModelSpec) comes from the export wrappers; model.json is its
`to_dict()`, and whatever is written is parsed back first, so a model dir this writes is one the
runtime reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import onnx

from ..io_utils import atomic_write_bytes, atomic_write_text
from ..models.config import ModelConfig
from ..spec.decode_options import DecodeOptions
from ..spec.graph_spec import FORMAT_VERSION, SpecialIds
from ..spec.modelspec import ModelSpec, parse_decoding
from ..text import Tokenizer
from .graphs import decoder_kind, graph_specs

__all__ = ["FORMAT_VERSION", "student_spec", "write_model_dir", "write_model_json"]


def student_spec(
    cfg: ModelConfig, tok: Tokenizer, summary: Mapping, decoding: Mapping | DecodeOptions | None = None
) -> ModelSpec:
    """The spec of a student exported by onnx_export.export_student (fp32 graphs only; variants
    are added to the graph entries by quantize.add_variants). `decoding`: the recommendation,
    DecodeOptions or its field names (e.g. {"beam": 10, "ctc_weight": 0.2})."""
    if not isinstance(decoding, DecodeOptions):
        decoding = parse_decoding(dict(decoding or {}), "recommended decoding")
    ids = SpecialIds.of_tokenizer(tok)
    architecture = {"encoder": cfg.encoder_type, "decoder": decoder_kind(cfg), "ctc_head": True, **cfg.to_dict()}
    if cfg.encoder_type.startswith("whisper"):  # 1500 positions: the runtime keeps pieces within it
        architecture["max_input_seconds"] = 30.0
    encoder, decoder = graph_specs(cfg)  # the wrappers of the model's decoder kind declare them
    return ModelSpec(cfg.sample_rate, cfg.vocab_size, ids, cfg.frame_shift_s, encoder, decoder, decoding,
                     architecture, summary)


def stamp_metadata(onnx_path: Path, props: Mapping[str, str]) -> None:
    model = onnx.load(str(onnx_path), load_external_data=False)  # tensors held by reference stay so
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    atomic_write_bytes(onnx_path, model.SerializeToString())


def write_model_dir(
    out_dir: Path, cfg: ModelConfig, tok: Tokenizer, summary: Mapping, decoding: Mapping | DecodeOptions | None = None
) -> ModelSpec:
    """tokenizer.model + model.json + every graph's metadata; returns the spec written."""
    atomic_write_bytes(out_dir / "tokenizer.model", tok.model_bytes)
    return write_model_json(out_dir, student_spec(cfg, tok, summary, decoding))


def write_model_json(out_dir: Path, spec: ModelSpec) -> ModelSpec:
    """Check `spec` by writing it out and parsing it back (what the runtime will read), stamp it into
    every graph file it lists (all precisions), then write model.json (last: a dir with model.json
    is a finished export). Returns the spec as parsed back."""
    spec = ModelSpec.from_dict(spec.to_dict(), str(out_dir / "model.json"))
    props = spec.metadata()
    for graph in spec.graphs.values():
        for file in graph.distinct_files:
            stamp_metadata(out_dir / file, props)
    atomic_write_text(out_dir / "model.json", json.dumps(spec.to_dict(), indent=2) + "\n")
    return spec
