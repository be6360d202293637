"""Load a model directory (DESIGN.md §3) into onnxruntime sessions. numpy + onnxruntime only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelError
from ..models.package_weights import session_with_package_weights
from ..spec.graph_spec import PRECISIONS, READABLE_FORMATS, GraphSpec
from ..spec.modelspec import ModelSpec, load_model_spec
from ..text import Tokenizer
from ..whisper_tokenizer import VOCAB_FILE, WhisperTokenizer

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
# Rows per encoder call on the CPU. Measured at 1 thread on 100 utterances, length-sorted: 0.97 CPU s
# in calls of 1, 2 or 4 rows, 1.02 s in calls of 8 and 1.19 s in calls of 16. Bigger batches only add
# padding and tensors that do not fit the cache. A GPU gets the whole batch in one call.
CPU_ENCODER_ROWS = 4
# int8 graphs quantise each MatMul's input with one scale for the whole tensor (onnxruntime's dynamic
# quantisation), so a row's output depends on the other rows of the call. A quantised encoder is run one
# row per call (rows cost the same CPU time in calls of 1 as of 4, above); a quantised decoder step makes
# the transcriber decode one utterance at a time (transcriber.py). kdasr's own exports quantise the
# encoder only (kdasr/export/quantize.py).
BATCH_DEPENDENT = "int8"
__all__ = ["PRECISIONS", "READABLE_FORMATS", "OnnxStudent", "load_graph", "make_session", "run_graph"]


def make_session(path: Path, device: str = "cpu", threads: int | None = None) -> ort.InferenceSession:
    """One tuned session: all graph optimisations, sequential execution (these graphs are chains),
    one inter-op thread, `threads` intra-op threads (default: ORT's choice, all cores). Tensors the graph
    holds by reference to a package (model.json "external_weights" beside it) are rebuilt and passed in."""
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
    sess = session_with_package_weights(path, opts, PROVIDERS[device],
                                        refused="{path}: cannot load ONNX graph ({reason})")
    if device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise ModelError("--device cuda: the CUDA provider failed to start (check the CUDA/cuDNN libraries)")
    return sess


def graph_path(model_dir: Path, graph: GraphSpec, precision: str) -> Path:
    """The file of one graph at a precision (the spec lists variants beside the fp32 file)."""
    path = model_dir / graph.file_for(precision, str(model_dir))
    if not path.is_file():
        raise ModelError(f"{model_dir}: missing {path.name}")
    return path


def run_graph(sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)",
             "int32": "tensor(int32)", "bool": "tensor(bool)"}


def check_tensors(path: Path, sess: ort.InferenceSession, tensors) -> None:
    """Each spec tensor against the graph's real input: rank, fixed sizes and element type."""
    real = {i.name: i for i in sess.get_inputs()}
    for t in tensors:
        got = real[t.name]
        fixed = [(a, d) for a, d in enumerate(t.shape) if isinstance(d, int)]
        bad = len(got.shape) != len(t.shape) or any(isinstance(got.shape[a], int) and got.shape[a] != d
                                                    for a, d in fixed)
        if bad or got.type != ORT_TYPES[t.dtype]:
            raise ModelError(f"{path}: input {t.name} is {got.type} {list(got.shape)}, the model spec says "
                             f"{t.dtype} {list(t.shape)} (graph from another export?)")


def load_graph(
    model_dir: Path, json_path: Path, name: str, graph: GraphSpec, precision: str, device: str, threads: int | None
) -> ort.InferenceSession:
    """A session for the graph `name`, whose input and output names must be the ones declared in
    `json_path` (a graph from another export, or encoder and decoder swapped, fails here)."""
    path = graph_path(model_dir, graph, precision)
    sess = make_session(path, device, threads)
    actual = {"inputs": [i.name for i in sess.get_inputs()], "outputs": [o.name for o in sess.get_outputs()]}
    for side, got in actual.items():
        if got != list(getattr(graph, side)):
            raise ModelError(
                f"{path}: the graph's {side} {got} are not the {name} {side} {json_path.name} declares "
                f"{list(getattr(graph, side))} (files swapped, or from another export?)"
            )
    return sess


def _join_rows(parts: list[np.ndarray]) -> np.ndarray:
    """Encoder outputs of consecutive row ranges as one batch: every axis but the first (rows)
    zero-padded to the largest (only the frames axes differ between calls)."""
    most = np.max([p.shape for p in parts], axis=0)
    return np.concatenate([np.pad(p, [(0, 0)] + [(0, m - d) for m, d in zip(most[1:], p.shape[1:])])
                           for p in parts])


@dataclass
class OnnxStudent:
    """Encoder + decoder-step sessions, the tokenizer and the model spec (parsed once, here)."""

    model_dir: Path
    spec: ModelSpec
    tokenizer: Tokenizer | WhisperTokenizer
    encoder: ort.InferenceSession
    decoder: ort.InferenceSession
    device: str = "cpu"
    precision: str = "fp32"  # the variant whose files these sessions run (graph_path)
    # batch digest -> encoder outputs, while remember_encodings() is on; None: off
    _memo: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)
    _memo_bytes_left: int = field(default=0, repr=False)

    @classmethod
    def load(
        cls, model_dir: str | Path, device: str = "cpu", threads: int | None = None, precision: str | None = None
    ) -> OnnxStudent:
        """precision None: the one model.json recommends for `device` (ModelSpec.precision_for), else fp32."""
        model_dir = Path(model_dir)
        json_path = model_dir / "model.json"
        spec = load_model_spec(model_dir)
        precision = spec.precision_for(device) if precision is None else precision
        graphs = {
            name: load_graph(model_dir, json_path, name, graph, precision, device, threads)
            for name, graph in spec.graphs.items()
        }
        check_tensors(graph_path(model_dir, spec.decoder.graph, precision), graphs["decoder"],
                      [*spec.decoder.state, *spec.decoder.memory])
        if spec.architecture.get("tokenizer") == "whisper-bpe":  # kdasr import-whisper
            tok = WhisperTokenizer(model_dir / VOCAB_FILE)
        else:
            tok = Tokenizer(model_dir / "tokenizer.model")
        if tok.vocab_size != spec.vocab_size:
            raise ModelError(f"{model_dir}: tokenizer has {tok.vocab_size} units, model.json says {spec.vocab_size}")
        return cls(model_dir, spec, tok, graphs["encoder"], graphs["decoder"], device, precision)

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    def rows_interact(self, graph: str) -> bool:
        """Whether a row's output of `graph` depends on the other rows of the call: the graph runs a
        dynamically quantised file of its own (an int8 entry naming the fp32 graph does not)."""
        return self.precision == BATCH_DEPENDENT and self.spec.graphs[graph].is_own_variant(self.precision)

    def remember_encodings(self, max_bytes: int = 1 << 30) -> None:
        """Keep the encoder outputs of every batch (up to max_bytes) and return them when the same
        batch comes again: a grid search decodes one dev set many times with other search settings
        (`kdasr tune`), and the encoder's output does not depend on them. The kept arrays are
        read-only, so nothing downstream can change what a later decode gets."""
        self._memo, self._memo_bytes_left = {}, max_bytes

    def encode(self, waves: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
        """Encoder outputs by name (spec.encoder says which is which); float16 outputs come back float32.
        On the CPU a batch is encoded CPU_ENCODER_ROWS rows at a time (a quantised encoder: one), each
        call cut to its longest wave; the outputs are joined with zeros past each call's frames (padding,
        as in one call)."""
        if self._memo is None:
            return self._encode_batch(waves, lens)
        key = hashlib.sha1(np.ascontiguousarray(waves).tobytes() + np.ascontiguousarray(lens).tobytes()).hexdigest()
        out = self._memo.get(key)
        if out is None:
            out = self._encode_batch(waves, lens)
            size = sum(v.nbytes for v in out.values())
            if size <= self._memo_bytes_left:
                for v in out.values():
                    v.setflags(write=False)
                self._memo[key], self._memo_bytes_left = out, self._memo_bytes_left - size
        return out

    def _encode_batch(self, waves: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
        rows = 1 if self.rows_interact("encoder") else CPU_ENCODER_ROWS if self.device == "cpu" else len(lens)
        if len(lens) <= rows:
            return self._encode(waves, lens)
        parts = [self._encode(waves[i : i + rows, : int(lens[i : i + rows].max())], lens[i : i + rows])
                 for i in range(0, len(lens), rows)]
        return {name: _join_rows([p[name] for p in parts]) for name in parts[0]}

    def _encode(self, waves: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
        enc = self.spec.encoder
        out = run_graph(self.encoder, {enc.waveform: waves, enc.waveform_lens: lens})
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in out.items()}

    def decoder_step(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_graph(self.decoder, feeds)
