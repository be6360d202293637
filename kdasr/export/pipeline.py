"""`kdasr export` as a library call: checkpoint(s) -> model directory, optional parity check."""

from __future__ import annotations

from pathlib import Path

from ..models.student import Seq2SeqStudent, count_parameters
from ..text import Tokenizer
from ..training.checkpoint import average_checkpoints, load_checkpoint, student_from_checkpoint
from .check import GraphCheck, check_model_dir
from .model_dir import write_model_dir, write_model_json
from .onnx_export import export_student
from .quantize import add_variants


def load_student(checkpoints: list[Path]) -> tuple[Seq2SeqStudent, dict]:
    payload = average_checkpoints(checkpoints) if len(checkpoints) > 1 else load_checkpoint(checkpoints[0])
    model = student_from_checkpoint(payload, ", ".join(map(str, checkpoints)))
    return model.eval(), payload


def export_checkpoint(
    checkpoints: list[Path],
    out_dir: Path,
    check: bool = False,
    extra_summary: dict | None = None,
    quantize: list[str] | tuple[str, ...] = (),
    decoding: dict | None = None,
) -> tuple[dict, list[GraphCheck]]:
    model, payload = load_student(checkpoints)
    tok = Tokenizer.from_bytes(payload["tokenizer_model"])
    export_student(model, out_dir)
    summary = {
        **payload.get("summary", {}),
        "steps": payload.get("step"),
        "epochs": payload.get("epoch"),
        "train_seconds": round(payload.get("elapsed", 0.0)),
        "parameters": count_parameters(model),
        "averaged_checkpoints": [p.name for p in checkpoints],
        **(extra_summary or {}),
    }
    desc = write_model_dir(out_dir, model.cfg, tok, summary, decoding)
    if quantize:
        add_variants(out_dir, desc["graphs"], list(quantize))
        write_model_json(out_dir, desc)
    checks = check_model_dir(model, out_dir, desc["graphs"]) if check else []
    return desc, checks
