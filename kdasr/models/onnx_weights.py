"""Weights from an exported model directory back into the torch student.

A model dir (encoder.onnx + decoder.onnx + model.json) is often all that survives of a run:
checkpoints stay on the training machine, the model dir is what gets shipped. This reads the
fp32 graphs' initializers back into a state dict so training can continue from a shipped model
(`kdasr train --init-from export/demo-en`). It lives with the models, not in kdasr.export, so
that training, export and the torch reference engine all load students one way
(kdasr.models.student_io) without importing a later stage; model.json is read as the typed
ModelSpec (kdasr/spec/modelspec.py, shared like text.py), whatever its format version.

Most initializers keep their torch names (minus the export wrapper's prefix). The exporter
turns each nn.Linear weight into a transposed anonymous MatMul constant; the MatMul node's
scope name (`/encoder/blocks.0/ff1/net/net.1/MatMul`) says which module it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from ..spec.modelspec import ModelSpec, load_model_spec
from ..text import Tokenizer
from .config import ModelConfig
from .student import Seq2SeqStudent, build_model

# module prefix each graph's scope names are relative to (see export/wrappers.py)
GRAPH_SCOPE = {"encoder": "", "decoder": "decoder."}
WRAPPER_PREFIXES = ("model.",)


def _torch_name(onnx_name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        onnx_name = onnx_name.removeprefix(prefix)
    return onnx_name


def _module_path(node_name: str) -> str:
    """'/encoder/blocks.0/ff1/net/net.1/MatMul' -> 'encoder.blocks.0.ff1.net.1'."""
    parts = [p for p in node_name.split("/") if p][:-1]
    out: list[str] = []
    for p in parts:
        # a Sequential child is scoped as 'net/net.1': the child's part already names its parent
        if out and p.startswith(out[-1] + "."):
            out[-1] = p
        else:
            out.append(p)
    return ".".join(out)


def matmul_constants(graph, scope: str) -> list[tuple[str, str]]:
    """(anonymous MatMul initializer, the torch key of the nn.Linear weight it is the transpose of)."""
    inits = {i.name for i in graph.initializer}
    # the bias Add that follows a MatMul names the module exactly, even where the scope is
    # shortened (decoder.memory_keys is called from the encoder graph and scoped '/key')
    bias_of = {}
    for node in graph.node:
        if node.op_type == "Add":
            named = [i for i in node.input if i in inits and i.endswith(".bias")]
            for i in node.input:
                if named and i not in inits:
                    bias_of[i] = named[0]
    out = []
    for node in graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if not node.input[1].startswith("onnx::"):
            continue  # a named parameter used directly, taken by its own name
        bias = bias_of.get(node.output[0])
        if bias is not None:
            key = _torch_name(bias.removesuffix(".bias") + ".weight")
        else:
            key = scope + _module_path(node.name) + ".weight"
        out.append((node.input[1], key))
    return out


def _graph_weights(path: Path, scope: str) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    from .package_weights import external_weights_of, referenced_arrays

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer
             if i.data_location != onnx.TensorProto.EXTERNAL}
    ew = external_weights_of(path)  # the tensors held by reference to a package (model.json)
    if ew is not None:
        inits |= referenced_arrays(ew, path.name, str(path.parent / "model.json"))
    weights = {_torch_name(name): value for name, value in inits.items()}
    for name, key in matmul_constants(model.graph, scope):
        weights[key] = inits[name].T
    return weights


def load_student_from_model_dir(model_dir: Path) -> tuple[Seq2SeqStudent, Tokenizer, ModelSpec]:
    """Rebuild the torch student from an exported model dir; fails if any parameter is missing."""
    model_dir = Path(model_dir)
    spec = load_model_spec(model_dir)  # the model-dir contract, parsed and checked: one-line errors
    if not spec.architecture:
        raise ModelError(f"{model_dir / 'model.json'}: missing required key 'architecture' (an object)")
    try:
        model = build_model(ModelConfig.from_dict(dict(spec.architecture)))
    except (TypeError, ValueError) as e:
        raise ModelError(f"{model_dir / 'model.json'}: bad 'architecture' ({e})") from None
    found: dict[str, np.ndarray] = {}
    for graph, scope in GRAPH_SCOPE.items():
        file = model_dir / spec.graphs[graph].file
        if not file.is_file():
            raise ModelError(f"{model_dir}: missing {file.name}")
        found.update(_graph_weights(file, scope))
    state = model.state_dict()
    missing = [k for k in state if k not in found]
    if missing:
        raise ModelError(f"{model_dir}: cannot recover {len(missing)} parameters from the ONNX graphs: {missing[:5]}")
    for key, tensor in state.items():
        value = found[key]
        if tuple(value.shape) != tuple(tensor.shape):
            raise ModelError(f"{model_dir}: {key} has shape {value.shape} in ONNX, {tuple(tensor.shape)} in torch")
        state[key] = torch.from_numpy(np.array(value, copy=True)).to(tensor.dtype)
    model.load_state_dict(state)
    if not (model_dir / "tokenizer.model").is_file():
        raise ModelError(f"{model_dir}: missing tokenizer.model")
    return model.eval(), Tokenizer(model_dir / "tokenizer.model"), spec
