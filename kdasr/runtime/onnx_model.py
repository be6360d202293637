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


def make_session(path: Path, device: str = "cpu", threads: int | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ModelError("--device cuda: this onnxruntime has no CUDA provider (install the 'gpu' extra)")
    try:
        return ort.InferenceSession(str(path), opts, providers=PROVIDERS[device])
    except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
        raise ModelError(f"{path}: cannot load ONNX graph ({str(e).splitlines()[0]})") from e


@dataclass
class OnnxStudent:
    """Encoder + decoder-step sessions, the tokenizer and the model.json facts."""

    model_dir: Path
    info: dict
    tokenizer: Tokenizer
    encoder: ort.InferenceSession
    decoder: ort.InferenceSession

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu", threads: int | None = None) -> OnnxStudent:
        model_dir = Path(model_dir)
        meta = model_dir / "model.json"
        if not meta.is_file():
            raise ModelError(f"{model_dir}: not a kdasr model directory (no model.json)")
        try:
            info = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise ModelError(f"{meta}: invalid JSON ({e})") from e
        if info.get("format_version") != SUPPORTED_FORMAT:
            raise ModelError(f"{meta}: format_version {info.get('format_version')!r}, expected {SUPPORTED_FORMAT}")
        graphs = {}
        for name in ("encoder", "decoder"):
            path = model_dir / info["graphs"][name]["file"]
            if not path.is_file():
                raise ModelError(f"{model_dir}: missing {path.name}")
            graphs[name] = make_session(path, device, threads)
        tok = Tokenizer(model_dir / "tokenizer.model")
        if tok.vocab_size != info["vocab_size"]:
            raise ModelError(f"{model_dir}: tokenizer has {tok.vocab_size} units, model.json says {info['vocab_size']}")
        return cls(model_dir, info, tok, graphs["encoder"], graphs["decoder"])

    @property
    def sample_rate(self) -> int:
        return int(self.info["sample_rate"])

    def encode(self, waves: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
        names = [o.name for o in self.encoder.get_outputs()]
        inputs = dict(zip([i.name for i in self.encoder.get_inputs()], (waves, lens)))
        return dict(zip(names, self.encoder.run(None, inputs)))

    def decoder_step(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.decoder.get_outputs()]
        return dict(zip(names, self.decoder.run(None, feeds)))
