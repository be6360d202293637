"""Whisper weights by reference (model.json "external_weights", kdasr/spec/external_weights.py):
the encoder graphs of a whisper-encoder student keep every initializer that is not a tensor of the
installed whisper package, and hold those that are by reference to it.

Which initializer is which package variable comes from names, not from searching values: an
initializer's torch key (onnx_weights: MatMul constants are transposed Linear weights) and
whisper_encoder.ct2_names. Each one is then compared bit for bit with the variable put through the
declared transform; only an identical one is referenced. A frozen whisper tensor (ModelConfig
whisper_trainable_layers) that differs is an error in `reference` mode (the checkpoint is not what
it says), a reason to copy by default. A trained one that differs is simply copied.

Variants: an int8 graph (kdasr/export/quantize.py) keeps the float initializers quantize_dynamic
left alone (conv stem, positions, biases, norms) under their names; those are referenced too. Its
quantised MatMul weights (`<name>_quantized`, beside `<name>_scale` and `<name>_zero_point`, one of
each per tensor) are referenced as the fp32 tensor requantised with that scale and zero point by
onnxruntime's arithmetic (package_weights.requantise_int8), where that gives their bytes exactly;
the scale and zero point stay in the graph and are recorded in model.json. fp16 graphs hold all."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError
from ..io_utils import atomic_write_bytes, atomic_write_text
from ..models.onnx_weights import matmul_constants
from ..models.package_weights import rebuild, referenced_arrays
from ..models.whisper_encoder import WHISPER_DIMS, ct2_names_of
from ..models.whisper_weights import SOURCES, CT2Checkpoint, read_whisper
from ..spec.external_weights import LOCATION, ExternalWeights, TensorRef
from ..spec.graph_spec import read_spec_json
from ..spec.modelspec import ModelSpec
from .model_dir import stamp_metadata

MODES = ("reference", "copy")
ENCODER_SCOPE = "encoder."  # the whisper module's keys in the encoder graph (export/wrappers.py)


def _frozen(key: str, trainable: int, layers: int) -> bool:
    """Whether whisper parameter `key` (relative to the encoder) does not train (WhisperEncoder.set_trainable)."""
    n = layers if trainable < 0 else min(trainable, layers)
    if key == "positions":
        return True  # a buffer
    if key.startswith(("conv1.", "conv2.")):
        return n < layers
    if key.startswith("layers."):
        return int(key.split(".")[1]) < layers - n
    return n == 0  # the final norm


def expected_refs(graph: onnx.GraphProto, architecture: Mapping) -> dict[str, tuple[TensorRef, bool]]:
    """Initializer name -> (where it would come from in the package, whether it is frozen)."""
    layers = WHISPER_DIMS[architecture["encoder_type"]].layers
    ct2 = ct2_names_of(layers)
    trainable = int(architecture.get("whisper_trainable_layers", 0))
    dims = {i.name: tuple(i.dims) for i in graph.initializer}
    keys = {name: (name.removeprefix("model."), ()) for name in dims}
    keys |= {name: (key, ("transpose",)) for name, key in matmul_constants(graph, "")}
    out = {}
    for name, (key, transposed) in keys.items():
        ours = key.removeprefix(ENCODER_SCOPE)
        if key.startswith(ENCODER_SCOPE) and ours in ct2:
            ref = TensorRef(ct2[ours], "float32", dims[name], ("float32", *transposed))
            out[name] = (ref, _frozen(ours, trainable, layers))
    return out


def _is_external(init: onnx.TensorProto) -> bool:
    return init.data_location == onnx.TensorProto.EXTERNAL


def _make_external(init: onnx.TensorProto) -> None:
    """Keep the initializer's name, dtype and dims; its data is the package's (LOCATION)."""
    for data in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        init.ClearField(data)
    del init.external_data[:]
    init.data_location = onnx.TensorProto.EXTERNAL
    init.external_data.add(key="location", value=LOCATION)


def _identical(init: onnx.TensorProto, value: np.ndarray) -> bool:
    got = numpy_helper.to_array(init)
    return got.dtype == value.dtype and got.shape == value.shape and got.tobytes() == value.tobytes()


def reference_graph(path: Path, expected: Mapping[str, tuple[TensorRef, bool]], ckpt: CT2Checkpoint,
                    strict: bool) -> dict[str, TensorRef]:
    """Rewrite `path` with every initializer identical to its package tensor held by reference;
    returns them (with those already by reference). strict: a frozen tensor that differs is refused
    (ModelError naming the first), else the file is left as it is and {} returned."""
    model = onnx.load(str(path), load_external_data=False)
    refs, changed = {}, False
    for init in model.graph.initializer:
        if init.name not in expected:
            continue
        ref, frozen = expected[init.name]
        if _is_external(init):
            refs[init.name] = ref
            continue
        value = rebuild(ckpt.get(ref.variable), ref)
        if _identical(init, value):
            refs[init.name], changed = ref, True
            _make_external(init)
        elif frozen:
            if strict:
                raise ModelError(f"{path}: {init.name} is not bit-identical to {ref.variable} of the installed "
                                 f"package (through {'+'.join(ref.transform)}): refusing to hold it by reference")
            return {}
    if changed:
        atomic_write_bytes(path, model.SerializeToString())
    return refs


def copy_back(path: Path, ew: ExternalWeights) -> None:
    """The inverse: write the referenced tensors into `path` again (a self-contained graph)."""
    arrays = referenced_arrays(ew, path.name, str(path.parent / "model.json"))
    model = onnx.load(str(path), load_external_data=False)
    for i, init in enumerate(model.graph.initializer):
        if init.name in arrays:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(arrays[init.name], init.name))
    atomic_write_bytes(path, model.SerializeToString())


def variant_refs(path: Path, fp32: Mapping[str, TensorRef]) -> dict[str, tuple[TensorRef, bool]]:
    """What a variant graph may reference: the fp32 graph's tensors it holds under their own names, and
    their dynamic int8 quantisations with a per-tensor scale and zero point."""
    inits = {i.name: i for i in onnx.load(str(path), load_external_data=False).graph.initializer}
    out = {name: (ref, False) for name, ref in fp32.items() if name in inits}
    for name, ref in fp32.items():
        q, scale, zero = (inits.get(name + s) for s in ("_quantized", "_scale", "_zero_point"))
        if q is None or scale is None or zero is None or q.data_type != onnx.TensorProto.INT8:
            continue
        scale, zero = numpy_helper.to_array(scale), numpy_helper.to_array(zero)
        if scale.shape != () or zero.shape != () or scale.dtype != np.float32 or zero.dtype != np.int8:
            continue  # per-channel quantisation: not held by reference
        out[q.name] = (TensorRef(ref.variable, "int8", tuple(q.dims), (*ref.transform, "int8"), float(scale),
                                 int(zero)), False)
    return out


def package_of(encoder_type: str) -> tuple[CT2Checkpoint, dict] | None:
    """The installed whisper checkpoint and its one package (None: a model split over several files,
    which one reference cannot name)."""
    source = SOURCES[encoder_type]
    if len(source.parts) != 1:
        return None
    ckpt = read_whisper(encoder_type)
    return ckpt, ckpt.provenance["packages"][0]


def reference_encoder(out_dir: Path, files: list[str], architecture: Mapping, mode: str | None
                      ) -> ExternalWeights | None:
    """Hold the whisper tensors of the encoder graph `files` (fp32 first, then its variants) by
    reference. mode "copy": nothing changes. "reference": refused (ModelError) unless every frozen
    whisper tensor is identical to the package's. None (the default): reference when that holds,
    copy otherwise. Returns what to record in model.json (None: everything stays in the graphs)."""
    encoder_type = str(architecture.get("encoder_type", ""))
    if mode == "copy" or encoder_type not in WHISPER_DIMS:
        if mode == "reference":
            raise ModelError(f"{out_dir}: --whisper-weights reference: the encoder is {encoder_type!r}, not whisper")
        return None
    strict = mode == "reference"
    try:
        found = package_of(encoder_type)
    except ModelError:
        if strict:
            raise
        return None  # the package is not installed here: copy
    if found is None:
        if strict:
            raise ModelError(f"{out_dir}: {encoder_type}'s weights are split over several packages; "
                             "by reference holds one file")
        return None
    ckpt, package = found
    fp32 = out_dir / files[0]  # a variant only references names the fp32 graph references
    expected = expected_refs(onnx.load(str(fp32), load_external_data=False).graph, architecture)
    per_file = {files[0]: reference_graph(fp32, expected, ckpt, strict)}
    if not per_file[files[0]]:
        return None
    for variant in files[1:]:  # only tensors of those the fp32 graph references, identical there too
        refs = reference_graph(out_dir / variant, variant_refs(out_dir / variant, per_file[files[0]]), ckpt,
                               strict=False)
        if refs:
            per_file[variant] = refs
    tensors = {n: r for refs in per_file.values() for n, r in refs.items()}
    return ExternalWeights(package["name"], package["version"], package["file"], ckpt.sha256, tensors,
                           {f: tuple(refs) for f, refs in per_file.items()}, ckpt.provenance["licence"])


def rewrite_model_dir(model_dir: Path, mode: str) -> ExternalWeights | None:
    """`kdasr export --out DIR --whisper-weights MODE` without checkpoints: an exported dir's encoder
    graphs rewritten in place (reference: the package's tensors removed, each verified bit-identical
    first; copy: written back), then model.json, the rest of it as written. Returns the references."""
    if mode not in MODES:
        raise ModelError(f"--whisper-weights must be one of {', '.join(MODES)}, not {mode!r}")
    path = Path(model_dir) / "model.json"
    raw = read_spec_json(path, "model")
    spec = ModelSpec.from_dict(raw, str(path))
    names = list(spec.encoder.graph.distinct_files)
    if mode == "reference":
        external = reference_encoder(Path(model_dir), names, spec.architecture, "reference")
    else:
        for file in (spec.external_weights.files if spec.external_weights else {}):
            copy_back(Path(model_dir) / file, spec.external_weights)
        external = None
    raw.pop("external_weights", None)
    if external is not None:
        raw["external_weights"] = external.to_dict()
    spec = ModelSpec.from_dict(raw, str(path))  # parsed before anything is written
    for file in names:  # the rewritten graphs describe themselves as model.json now does
        stamp_metadata(Path(model_dir) / file, spec.metadata())
    atomic_write_text(path, json.dumps(raw, indent=2) + "\n")
    return external
