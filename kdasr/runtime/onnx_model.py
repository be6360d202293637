"""Load a model directory (DESIGN.md §3) into onnxruntime sessions. numpy + onnxruntime only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelError
from ..text import Tokenizer

SUPPORTED_FORMAT = 1
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
PRECISIONS = ("fp32", "int8", "fp16")  # model.json graphs.<name>.file / .int8 / .fp16


def make_session(path: Path, device: str = "cpu", threads: int | None = None) -> ort.InferenceSession:
    """One tuned session: all graph optimisations, sequential execution (these graphs are chains),
    one inter-op thread, `threads` intra-op threads (default: ORT's choice, all cores)."""
    if device not in PROVIDERS:
        raise ModelError(f"device must be one of {', '.join(PROVIDERS)}, not {device!r}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ModelError(
            "--device cuda: this onnxruntime has no CUDA provider (available: "
            f"{', '.join(ort.get_available_providers())}); install the 'gpu' extra (onnxruntime-gpu, "
            "instead of onnxruntime) on a machine with CUDA"
        )
    try:
        sess = ort.InferenceSession(str(path), opts, providers=PROVIDERS[device])
    except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
        raise ModelError(f"{path}: cannot load ONNX graph ({str(e).splitlines()[0]})") from e
    if device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise ModelError("--device cuda: the CUDA provider failed to start (check the CUDA/cuDNN libraries)")
    return sess


def graph_path(model_dir: Path, entry: dict, precision: str) -> Path:
    """The file of one graph at a precision; model.json lists variants beside the fp32 `file`."""
    if precision not in PRECISIONS:
        raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    name = entry["file"] if precision == "fp32" else entry.get(precision)
    if name is None:
        hint = f"kdasr export --quantize {precision}"
        raise ModelError(f"{model_dir}: no {precision} variant of {entry['file']} ({hint})")
    path = model_dir / name
    if not path.is_file():
        raise ModelError(f"{model_dir}: missing {path.name}")
    return path


def run_graph(sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def read_json(path: Path, what: str) -> dict:
    """A model/teacher description file: it must exist and hold one JSON object."""
    if not path.is_file():
        raise ModelError(f"{path.parent}: not a kdasr {what} directory (no {path.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_graph_entry(json_path: Path, graphs: object, name: str) -> dict:
    """graphs.<name> of model.json / lm.json: {"file": str, "inputs": [str], "outputs": [str], ...}."""
    entry = graphs.get(name) if isinstance(graphs, dict) else None
    if not isinstance(entry, dict):
        raise ModelError(f"{json_path}: 'graphs' lacks an object for the {name} graph")
    for key, ok in (("file", isinstance(entry.get("file"), str)), ("inputs", _names(entry.get("inputs"))),
                    ("outputs", _names(entry.get("outputs")))):
        if not ok:
            want = "a file name" if key == "file" else "a list of tensor names"
            raise ModelError(f"{json_path}: graphs.{name}.{key} must be {want}, got {entry.get(key)!r}")
    return entry


# what the runtime's scorers feed and read, by name (runtime/scorers.py, search.py, decode.py)
STUDENT_NEEDS = {
    ("encoder", "outputs"): ("memory", "memory_lens", "memory_keys", "ctc_logprobs"),
    ("decoder", "inputs"): ("tokens", "h", "c", "context", "attention", "memory", "memory_keys", "memory_lens"),
    ("decoder", "outputs"): ("logprobs", "h_out", "c_out", "context_out", "attention_out"),
}
STUDENT_KEYS = {"sample_rate": int, "vocab_size": int, "special_ids": dict, "graphs": dict, "decoder_state": dict}
SPECIAL_IDS = ("pad", "blank", "bos", "eos")


def check_model_info(json_path: Path, info: dict) -> None:
    """model.json has every key the runtime reads, of the right kind; one line naming what is wrong."""
    if info.get("format_version") != SUPPORTED_FORMAT:
        raise ModelError(f"{json_path}: format_version {info.get('format_version')!r}, expected {SUPPORTED_FORMAT}")
    for key, kind in STUDENT_KEYS.items():
        if key not in info:
            raise ModelError(f"{json_path}: missing required key '{key}'")
        value = info[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value <= 0):
            want = "a positive integer" if kind is int else "an object"
            raise ModelError(f"{json_path}: '{key}' must be {want}, got {json.dumps(value)[:60]}")
    for key in SPECIAL_IDS:
        v = info["special_ids"].get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < info["vocab_size"]:
            raise ModelError(f"{json_path}: special_ids.{key} must be a token id below vocab_size, got {v!r}")
    for (graph, side), needed in STUDENT_NEEDS.items():
        declared = check_graph_entry(json_path, info["graphs"], graph)[side]
        if missing := [n for n in needed if n not in declared]:
            raise ModelError(f"{json_path}: graphs.{graph}.{side} lacks {', '.join(missing)} (the runtime needs them)")
    for key in ("h", "c", "context"):
        dims = info["decoder_state"].get(key)
        if not (isinstance(dims, list) and len(dims) == 1 and isinstance(dims[0], int) and dims[0] > 0):
            raise ModelError(f"{json_path}: decoder_state.{key} must be [size], got {dims!r}")


def load_graph(
    model_dir: Path, json_path: Path, name: str, entry: dict, precision: str, device: str, threads: int | None
) -> ort.InferenceSession:
    """A session for graphs.<name>, whose input and output names must be the ones declared in
    `json_path` (a graph from another export, or encoder and decoder swapped, fails here)."""
    path = graph_path(model_dir, entry, precision)
    sess = make_session(path, device, threads)
    actual = {"inputs": [i.name for i in sess.get_inputs()], "outputs": [o.name for o in sess.get_outputs()]}
    for side, got in actual.items():
        if got != entry[side]:
            raise ModelError(
                f"{path}: the graph's {side} {got} are not the {name} {side} {json_path.name} declares "
                f"{entry[side]} (files swapped, or from another export?)"
            )
    return sess


@dataclass
class OnnxStudent:
    """Encoder + decoder-step sessions, the tokenizer and the model.json facts."""

    model_dir: Path
    info: dict
    tokenizer: Tokenizer
    encoder: ort.InferenceSession
    decoder: ort.InferenceSession

    @classmethod
    def load(
        cls, model_dir: str | Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
    ) -> OnnxStudent:
        model_dir = Path(model_dir)
        json_path = model_dir / "model.json"
        info = read_json(json_path, "model")
        check_model_info(json_path, info)
        graphs = {
            name: load_graph(model_dir, json_path, name, info["graphs"][name], precision, device, threads)
            for name in ("encoder", "decoder")
        }
        tok = Tokenizer(model_dir / "tokenizer.model")
        if tok.vocab_size != info["vocab_size"]:
            raise ModelError(f"{model_dir}: tokenizer has {tok.vocab_size} units, model.json says {info['vocab_size']}")
        return cls(model_dir, info, tok, graphs["encoder"], graphs["decoder"])

    @property
    def sample_rate(self) -> int:
        return int(self.info["sample_rate"])

    def encode(self, waves: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
        inputs = dict(zip([i.name for i in self.encoder.get_inputs()], (waves, lens)))
        out = run_graph(self.encoder, inputs)
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in out.items()}

    def decoder_step(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_graph(self.decoder, feeds)
