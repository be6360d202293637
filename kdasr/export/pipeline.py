"""`kdasr export` as a library call: checkpoint(s) -> model directory, optional parity check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..models.student import count_parameters
from ..models.student_io import load_student
from ..spec.graph_spec import read_spec_json
from ..spec.modelspec import ModelSpec
from .check import GraphCheck, check_model_dir
from .model_dir import write_model_dir, write_model_json
from .onnx_export import export_student
from .quantize import STUDENT_INT8_GRAPHS, add_variants
from .whisper_by_reference import reference_encoder


def source_decoding(checkpoints: list[Path]) -> dict:
    """The recommended decoding of an exported model dir being re-exported (e.g. into a newer
    format), which the new dir keeps unless flags say otherwise; {} for checkpoints."""
    if len(checkpoints) == 1 and Path(checkpoints[0]).is_dir():
        return dict(read_spec_json(Path(checkpoints[0]) / "model.json").get("decoding") or {})
    return {}


def source_precision(checkpoints: list[Path], written: tuple[str, ...]) -> dict:
    """Likewise the recommended precision of a model dir being re-exported, for the devices whose
    variant this export writes again (`written`); {} for checkpoints."""
    if len(checkpoints) == 1 and Path(checkpoints[0]).is_dir():
        recorded = read_spec_json(Path(checkpoints[0]) / "model.json").get("precision")
        return {d: p for d, p in recorded.items() if p in written} if isinstance(recorded, dict) else {}
    return {}


def export_checkpoint(
    checkpoints: list[Path],
    out_dir: Path,
    check: bool = False,
    extra_summary: dict | None = None,
    quantize: list[str] | tuple[str, ...] = (),
    decoding: dict | None = None,
    precision: dict | None = None,
    whisper_weights: str | None = None,
    int8_decoder: bool = False,
) -> tuple[ModelSpec, list[GraphCheck]]:
    """precision: the recommended precision by device (kdasr/spec/precision.py), each one a variant in
    `quantize` (else the written model.json fails to parse back: ModelError naming it).
    whisper_weights: "reference", "copy" or None (reference when the frozen whisper tensors are the
    installed package's, bit for bit; whisper_by_reference.reference_encoder). int8_decoder: --quantize
    int8 quantises the decoder too (default: the encoder only; quantize.py says why)."""
    student = load_student(checkpoints)
    model, tok = student.model, student.tokenizer
    decoding = {**source_decoding(checkpoints), **(decoding or {})}
    precision = {**source_precision(checkpoints, tuple(quantize)), **(precision or {})}
    export_student(model, out_dir)
    summary = {
        **student.history,
        "parameters": count_parameters(model),
        "averaged_checkpoints": [p.name for p in checkpoints],
        **(extra_summary or {}),
    }
    spec = write_model_dir(out_dir, model.cfg, tok, summary, decoding)
    if quantize:
        spec = spec.with_graphs(add_variants(out_dir, spec.graphs, list(quantize),
                                             int8_graphs=None if int8_decoder else STUDENT_INT8_GRAPHS))
    # after the variants: quantisation reads the fp32 graph's data
    external = reference_encoder(out_dir, list(spec.encoder.graph.distinct_files),
                                 spec.architecture, whisper_weights)
    if quantize or precision or external:
        spec = write_model_json(out_dir, replace(spec, precision=precision, external_weights=external))
    checks = check_model_dir(model, out_dir, spec.graphs) if check else []
    return spec, checks
