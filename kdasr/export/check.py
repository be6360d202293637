"""Parity check: every exported graph against torch on shapes other than the export example's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from ..models.encoder import padding_mask
from ..models.onnx_weights import load_student_from_model_dir
from ..models.package_weights import session_with_package_weights
from ..models.student import Seq2SeqStudent
from ..spec.graph_spec import GraphSpec
from .graphs import student_graphs

# (batch, seconds): batch sizes and lengths deliberately unlike the export dummies (2 x 3 s, 3 x 40)
ENCODER_CASES = [(1, 1.3), (4, 7.1), (5, 2.2)]
DECODER_CASES = [(1, 17), (6, 93), (2, 250)]


@dataclass
class GraphCheck:
    graph: str
    max_error: float
    cases: int
    informational: bool = False  # reduced-precision variants: reported, not held to the fp32 tolerance
    unit: str = "shapes"  # what `cases` counts
    detail: str = ""  # why a check could not be made at all (printed with it)
    tolerance_factor: float = 1.0  # held to tol x this (a graph that magnifies rounding says why in detail)

    def ok(self, tol: float) -> bool:
        return self.informational or self.max_error <= tol * self.tolerance_factor


@torch.no_grad()
def check_encoder(model: Seq2SeqStudent, path: Path, seed: int = 0) -> GraphCheck:
    graph, sess, gen = student_graphs(model)[0], session_with_package_weights(path), torch.Generator().manual_seed(seed)
    # outputs with a frames axis: compared on real frames only (default: the 3-D ones, [B, T, ...])
    frame_axes = getattr(graph, "frame_axes", None)
    worst = 0.0
    for batch, seconds in ENCODER_CASES:
        s = int(seconds * model.cfg.sample_rate)
        lens = torch.tensor([s] + [int(s * (0.5 + 0.5 * torch.rand(1, generator=gen))) for _ in range(batch - 1)])
        wave = torch.randn(batch, s, generator=gen) * 0.1 * padding_mask(lens, s)
        ref = graph(wave, lens)
        got = sess.run(None, {"waveform": wave.numpy(), "waveform_lens": lens.numpy()})
        valid = padding_mask(ref[1], ref[0].shape[1]).numpy()  # compare real frames, not padding
        for name, r, g in zip(graph.output_names, ref, got):
            r = r.numpy()
            axis = frame_axes.get(name) if frame_axes is not None else (1 if r.ndim == 3 else None)
            diff = np.abs(r - g)
            if axis is not None:
                diff = np.moveaxis(diff, axis, 1)[valid]
            worst = max(worst, float(diff.max(initial=0.0)))
    factor = getattr(model.encoder, "parity_tolerance_factor", 1.0)
    detail = getattr(model.encoder, "parity_note", "") if factor != 1.0 else ""
    return GraphCheck("encoder", worst, len(ENCODER_CASES), detail=detail, tolerance_factor=factor)


@torch.no_grad()
def check_on_dummy_inputs(
    graph: torch.nn.Module, path: Path, cases: list[tuple], name: str, seed: int = 0
) -> GraphCheck:
    """Run the ONNX file on `graph.dummy_inputs(*case)` for each case against torch (the graph's
    `reference` where it has one, else its forward); worst output difference."""
    sess = session_with_package_weights(path)
    torch.manual_seed(seed)
    worst = 0.0
    for case in cases:
        inputs = graph.dummy_inputs(*case)
        # a graph whose forward rearranges the model's own step is held to that step (`reference`)
        ref = getattr(graph, "reference", graph)(*inputs)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = sess.run(None, {n: x.numpy() for n, x in zip(graph.input_names, inputs)})
        worst = max(worst, *(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got)))
    return GraphCheck(name, worst, len(cases))


def check_decoder(model: Seq2SeqStudent, path: Path, seed: int = 0) -> GraphCheck:
    graph = student_graphs(model)[1]
    return check_on_dummy_inputs(graph, path, getattr(graph, "check_cases", DECODER_CASES), "decoder", seed)


def check_weights_read_back(model: Seq2SeqStudent, out_dir: Path) -> GraphCheck:
    """The torch student read back from the written dir (train --init-from DIR, bench --checkpoint
    DIR, export DIR) against the exported one: every parameter, worst difference; inf when the
    graphs no longer hold a parameter under a name the read-back finds."""
    ours = model.state_dict()
    try:
        back, _, _ = load_student_from_model_dir(out_dir)
    except ModelError as e:
        return GraphCheck("weights read back", float("inf"), len(ours), unit="parameter tensors", detail=str(e))
    theirs = back.state_dict()
    worst = max((float((theirs[k].double() - v.double()).abs().max()) for k, v in ours.items() if v.numel()),
                default=0.0)
    return GraphCheck("weights read back", worst, len(ours), unit="parameter tensors")


def check_model_dir(model: Seq2SeqStudent, out_dir: Path, graphs: Mapping[str, GraphSpec] | None = None
                    ) -> list[GraphCheck]:
    """fp32 graphs against torch, and the weights read back from them; int8 variants (when listed
    in `graphs`) reported beside them."""
    checks = [check_encoder(model, out_dir / "encoder.onnx"), check_decoder(model, out_dir / "decoder.onnx"),
              check_weights_read_back(model, out_dir)]
    for name, fn in (("encoder", check_encoder), ("decoder", check_decoder)):
        graph = (graphs or {}).get(name)
        if graph is not None and graph.is_own_variant("int8"):  # not an int8 entry naming the fp32 graph
            variant = graph.files["int8"]
            c = fn(model, out_dir / variant)
            checks.append(GraphCheck(f"{name}.int8", c.max_error, c.cases, informational=True))
    return checks
