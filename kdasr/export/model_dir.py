"""Write a model directory (DESIGN.md §3): ONNX graphs, tokenizer.model and model.json, with the
same facts stamped into each graph's metadata_props so a lone .onnx file still describes itself."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from ..io_utils import atomic_write_bytes, atomic_write_text
from ..models.config import ModelConfig
from ..text import Tokenizer
from .wrappers import DecoderStepGraph, EncoderGraph

FORMAT_VERSION = 1


def model_description(cfg: ModelConfig, tok: Tokenizer, summary: dict, decoding: dict | None = None) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "sample_rate": cfg.sample_rate,
        "vocab_size": cfg.vocab_size,
        "special_ids": {
            "pad": tok.pad_id,
            "blank": tok.pad_id,
            "unk": tok.unk_id,
            "bos": tok.bos_id,
            "eos": tok.eos_id,
            "mask": tok.mask_id,
        },
        "frame_shift_s": cfg.frame_shift_s,
        "architecture": {
            "encoder": cfg.encoder_type,
            "decoder": "lstm-location-attention",
            "ctc_head": True,
            **cfg.to_dict(),
        },
        "graphs": {
            "encoder": {
                "file": "encoder.onnx",
                "inputs": EncoderGraph.input_names,
                "outputs": EncoderGraph.output_names,
            },
            "decoder": {
                "file": "decoder.onnx",
                "inputs": DecoderStepGraph.input_names,
                "outputs": DecoderStepGraph.output_names,
            },
        },
        # shapes of the decoder state per hypothesis; "frames" follows the encoder output
        "decoder_state": {
            "h": [cfg.decoder_hidden],
            "c": [cfg.decoder_hidden],
            "context": [cfg.d_model],
            "attention": ["frames"],
        },
        "training": summary,
        # decoding options the runtime uses unless told otherwise (DecodeOptions field names)
        **({"decoding": decoding} if decoding else {}),
    }


def stamp_metadata(onnx_path: Path, desc: dict) -> None:
    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    for key in ("format_version", "sample_rate", "vocab_size", "frame_shift_s"):
        model.metadata_props.add(key=key, value=str(desc[key]))
    for key in ("special_ids", "architecture", "decoder_state", "training", "decoding"):
        if key not in desc:
            continue
        model.metadata_props.add(key=key, value=json.dumps(desc[key]))
    atomic_write_bytes(onnx_path, model.SerializeToString())


def write_model_dir(
    out_dir: Path, cfg: ModelConfig, tok: Tokenizer, summary: dict, decoding: dict | None = None
) -> dict:
    desc = model_description(cfg, tok, summary, decoding)
    for graph in desc["graphs"].values():
        stamp_metadata(out_dir / graph["file"], desc)
    atomic_write_bytes(out_dir / "tokenizer.model", tok.model_bytes)
    write_model_json(out_dir, desc)
    return desc


def write_model_json(out_dir: Path, desc: dict) -> None:
    atomic_write_text(out_dir / "model.json", json.dumps(desc, indent=2) + "\n")
