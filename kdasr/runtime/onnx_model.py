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
    if not path.is_file():
        raise ModelError(f"{path.parent}: not a kdasr {what} directory (no {path.name})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"{path}: invalid JSON ({e})") from e


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
        info = read_json(model_dir / "model.json", "model")
        if info.get("format_version") != SUPPORTED_FORMAT:
            got = info.get("format_version")
            raise ModelError(f"{model_dir / 'model.json'}: format_version {got!r}, expected {SUPPORTED_FORMAT}")
        graphs = {}
        for name in ("encoder", "decoder"):
            graphs[name] = make_session(graph_path(model_dir, info["graphs"][name], precision), device, threads)
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
