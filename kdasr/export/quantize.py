"""Reduced-precision variants of exported graphs, listed in the graph's model.json entry beside
its fp32 `file` (keys `int8`, `fp16`), so the runtime picks them by name.

int8: onnxruntime dynamic quantisation restricted to the op types that get faster on CPU.
Measured here (DESIGN.md §6): quantising everything made a Conformer 3x slower (ConvInteger);
MatMul (+ Gather for the embeddings) made it faster. fp16 is for the CUDA provider only (CPU
kernels mostly lack fp16); inputs and outputs stay float32 so the runtime code is the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ..spec.graph_spec import GraphSpec

INT8_OP_TYPES = ("MatMul", "Gather")
VARIANTS = ("int8", "fp16")


def variant_name(file: str, precision: str) -> str:
    return file.removesuffix(".onnx") + f".{precision}.onnx"


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = INT8_OP_TYPES,
                  exclude: tuple[str, ...] = ()) -> None:
    """exclude: nodes whose names start with one of these stay float (e.g. a log-mel front end's
    filterbank MatMul, whose input spans orders of magnitude that int8 activations cannot hold)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_suffix(".tmp.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" warning per call
    try:
        nodes = []
        if exclude:
            import onnx

            graph = onnx.load(str(src), load_external_data=False).graph
            nodes = [n.name for n in graph.node if n.name.startswith(exclude)]
        quantize_dynamic(str(src), str(tmp), op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8,
                         nodes_to_exclude=nodes)
    finally:
        root.setLevel(level)
    tmp.replace(dst)


def convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=False)
    tmp = dst.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(dst)


def add_variants(out_dir: Path, graphs: Mapping[str, GraphSpec], precisions: list[str],
                 exclude: tuple[str, ...] = ()) -> dict[str, GraphSpec]:
    """Write each requested variant of each graph; returns the graphs with their variant files listed.
    exclude: node name prefixes int8 leaves float (quantize_int8)."""
    out = dict(graphs)
    for precision in precisions:
        if precision not in VARIANTS:
            raise ValueError(f"--quantize must be one of {', '.join(VARIANTS)}, not {precision!r}")
        for key, graph in out.items():
            name = variant_name(graph.file, precision)
            src, dst = out_dir / graph.file, out_dir / name
            quantize_int8(src, dst, exclude=exclude) if precision == "int8" else convert_fp16(src, dst)
            out[key] = replace(graph, files={**graph.files, precision: name})
    return out
