"""Reduced-precision variants of exported graphs, listed in the graph's model.json entry beside
its fp32 `file` (keys `int8`, `fp16`), so the runtime picks them by name.

int8: onnxruntime dynamic quantisation restricted to the op types that get faster on CPU.
Measured here (DESIGN.md §6): quantising everything made a Conformer 3x slower (ConvInteger);
MatMul (+ Gather for the embeddings) made it faster. fp16 is for the CUDA provider only (CPU
kernels mostly lack fp16); inputs and outputs stay float32 so the runtime code is the same.

A student's int8 variant quantises its encoder only (STUDENT_INT8_GRAPHS); its decoder's int8 entry
names decoder.onnx itself. Dynamic quantisation scales a MatMul's input by the whole tensor's range,
and a decoder step's input holds every hypothesis of every utterance in the batch: with an int8
decoder, an utterance's text depends on what it is batched with, so the runtime decodes such a dir one
utterance at a time; with the fp32 decoder it decodes in batches, the text the same at batch 1 and 16.
Measured on export/demo-en and a copy rewritten with --fp32-decoder (`kdasr bench --system`, first 64
of the mix's test, beam 4 + CTC 0.3, 1 thread, with other jobs on the cores; records in
eval/pretrained/records/precision/int8-encoder/bench-layouts.md): RTFx at batch 16 50.1 against 41.1,
at batch 1 43.8 against 45.9 (there both decode alone, and the int8 decoder step is the cheaper one).
Accuracy is per model: demo-en's pooled dev WER was 32.61 % so against 32.32 with its int8 decoder
(fp32 32.00), and it keeps its int8 decoder by its precision rule. `kdasr export --int8-decoder`
quantises the decoder too."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path

from ..spec.graph_spec import GraphSpec
from ..spec.modelspec import ModelSpec

INT8_OP_TYPES = ("MatMul", "Gather")
VARIANTS = ("int8", "fp16")
STUDENT_INT8_GRAPHS = ("encoder",)  # see above: the decoder's int8 entry is its fp32 file


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
                 exclude: tuple[str, ...] = (), int8_graphs: Collection[str] | None = None) -> dict[str, GraphSpec]:
    """Write each requested variant of each graph; returns the graphs with their variant files listed.
    exclude: node name prefixes int8 leaves float (quantize_int8). int8_graphs: the graphs int8
    quantises (None: all); the others' int8 entry names their fp32 file."""
    out = dict(graphs)
    for precision in precisions:
        if precision not in VARIANTS:
            raise ValueError(f"--quantize must be one of {', '.join(VARIANTS)}, not {precision!r}")
        for key, graph in out.items():
            if precision == "int8" and int8_graphs is not None and key not in int8_graphs:
                out[key] = replace(graph, files={**graph.files, "int8": graph.file})
                continue
            name = variant_name(graph.file, precision)
            src, dst = out_dir / graph.file, out_dir / name
            quantize_int8(src, dst, exclude=exclude) if precision == "int8" else convert_fp16(src, dst)
            out[key] = replace(graph, files={**graph.files, precision: name})
    return out


def rewrite_int8_decoder(model_dir: Path, quantized: bool) -> ModelSpec:
    """`kdasr export --out DIR --int8-decoder / --fp32-decoder` without checkpoints: DIR's decoder int8
    entry changed in place. --int8-decoder quantises decoder.onnx into decoder.int8.onnx; --fp32-decoder
    points the entry at decoder.onnx. model.json is written first (atomically; the rest of it as written,
    and, as `export --recommend-precision` does, no graph restamped: their metadata keep the export's
    copy), then a file no entry names any more is removed, so the dir never lists a missing file.
    ModelError: no int8 variant to change (export with --quantize int8)."""
    import json

    from ..errors import ModelError
    from ..io_utils import atomic_write_text
    from ..spec.graph_spec import read_spec_json

    path = model_dir / "model.json"
    raw = read_spec_json(path, "model")
    spec = ModelSpec.from_dict(raw, str(path))
    graph = spec.decoder.graph
    if "int8" not in spec.encoder.graph.files:
        raise ModelError(f"{model_dir}: no int8 variant to change (export it with --quantize int8)")
    own = variant_name(graph.file, "int8")
    if quantized:
        quantize_int8(model_dir / graph.file, model_dir / own)
    raw["graphs"]["decoder"]["int8"] = own if quantized else graph.file
    spec = ModelSpec.from_dict(raw, str(path))  # parsed before it is written
    atomic_write_text(path, json.dumps(raw, indent=2) + "\n")
    if not quantized and (model_dir / own).is_file():
        (model_dir / own).unlink()
    return spec
