"""torch -> ONNX for the encoder and decoder-step graphs."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..io_utils import atomic_write_bytes
from .graphs import student_graphs

OPSET = 18


def export_graph(graph: torch.nn.Module, path: Path) -> None:
    """Trace `graph` with its own dummy inputs and write a single self-contained .onnx file.

    The TorchScript exporter is used because these graphs are static apart from the
    declared dynamic axes; the file is written atomically."""
    graph.eval()
    tmp = path.with_suffix(".export-tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            graph.dummy_inputs(),
            str(tmp),
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_axes=graph.dynamic_axes(),
            opset_version=OPSET,
            dynamo=False,
        )
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def export_student(model, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"encoder": out_dir / "encoder.onnx", "decoder": out_dir / "decoder.onnx"}
    encoder, decoder = student_graphs(model)  # the pair for the model's decoder kind
    export_graph(encoder, paths["encoder"])
    export_graph(decoder, paths["decoder"])
    return paths
