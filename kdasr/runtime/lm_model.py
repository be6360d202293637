"""The exported teachers at inference, torch-free: the LM step graph (shallow fusion scorer and
n-best rescoring) and the BERT scoring graph (pseudo-log-likelihood rescoring).

A teacher directory holds `lm.json` + `lm.onnx` and/or `bert.json` + `bert.onnx` (written by
`kdasr export-lm`); it may be the model directory itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelError
from ..spec.graph_spec import STEPS
from ..spec.modelspec import ModelSpec
from ..spec.teacher_spec import BertSpec, LMSpec, load_teacher_spec
from .onnx_model import load_graph, run_graph
from .search.scorers import initial_state


def _load(path: str | Path, kind: str, model: ModelSpec, device: str, threads: int | None, precision: str):
    path = Path(path)
    spec = load_teacher_spec(path, kind)
    if spec.vocab_size != model.vocab_size or spec.special_ids.eos != model.special_ids.eos:
        raise ModelError(f"{path}: the {kind} uses other units than the model (vocab or special ids differ)")
    if precision not in spec.graph.files:
        precision = "fp32"  # a teacher exported without that variant runs at fp32
    return spec, load_graph(path, path / f"{kind}.json", kind, spec.graph, precision, device, threads)


class LMScorer:
    """FullScorer over the LM step graph; state = the spec's state tensors (the KV cache
    [L, 2, N, H, steps, dh]), reordered along their batch axis."""

    def __init__(self, lm: OnnxLM) -> None:
        self.lm = lm

    def init_state(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return self.lm.empty_state(len(rows))

    def score(self, tokens: np.ndarray, state: dict, rows: np.ndarray) -> tuple[np.ndarray, dict]:
        return self.lm.step(tokens, state)

    def select_state(self, state: dict, src: np.ndarray) -> dict:
        return {s.name: np.take(state[s.name], src, axis=s.batch_axis) for s in self.lm.spec.state}


@dataclass
class OnnxLM:
    spec: LMSpec
    session: ort.InferenceSession

    @classmethod
    def load(cls, path, model: ModelSpec, device: str = "cpu", threads: int | None = None, precision: str = "fp32"):
        return cls(*_load(path, "lm", model, device, threads, precision))

    def empty_state(self, n: int) -> dict[str, np.ndarray]:
        return {s.name: initial_state(s, n, np.zeros(n, np.int64), 0) for s in self.spec.state}

    def steps_done(self, state: dict) -> int:
        """Positions the LM has read so far (the KV cache's STEPS length)."""
        t = next((t for t in self.spec.state if STEPS in t.shape), None)
        return 0 if t is None else state[t.name].shape[t.axis(STEPS)]

    def step(self, tokens: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """Log-probs of the next unit. Past the LM's last position (its max_len: the position table
        ends there) it has no opinion: zeros for every unit, state unchanged. A looping hypothesis
        or a long segment then decodes on without the LM instead of failing the whole batch."""
        if self.spec.max_len is not None and self.steps_done(state) >= self.spec.max_len:
            return np.zeros((len(tokens), self.spec.vocab_size), np.float32), state
        out = run_graph(self.session, {self.spec.tokens: tokens.astype(np.int64), **state})
        return out[self.spec.logprobs], {s.name: out[s.output] for s in self.spec.state}

    def scorer(self) -> LMScorer:
        return LMScorer(self)

    def sequence_scores(self, seqs: list[tuple[int, ...]]) -> np.ndarray:
        """log p(y <eos>) for every sequence, all in one batch, one step call per position; over the
        first max_len positions only (as BERT scores its window), the LM's whole reach."""
        ids = self.spec.special_ids
        n, width = len(seqs), max(len(s) for s in seqs) + 1
        width = min(width, self.spec.max_len or width)
        inputs = np.full((n, width), ids.pad, np.int64)
        targets = np.full((n, width), -1, np.int64)
        for i, s in enumerate(seqs):
            m = min(len(s) + 1, width)
            inputs[i, :m] = (ids.bos, *s)[:m]
            targets[i, :m] = (*s, ids.eos)[:m]
        total, state = np.zeros(n), self.empty_state(n)
        for t in range(width):
            logprobs, state = self.step(inputs[:, t], state)
            valid = targets[:, t] >= 0
            total[valid] += logprobs[valid, targets[valid, t]]
        return total


@dataclass
class OnnxBert:
    spec: BertSpec
    session: ort.InferenceSession
    # Tokens (rows x padded length) per graph call. Every row is a full forward pass over its
    # hypothesis, so the activations grow with rows x length: a fixed row count (4096 here before)
    # took ~20 GB at a 140-unit width. A token budget keeps the peak flat whatever the lengths.
    max_tokens: int = 16384

    @classmethod
    def load(cls, path, model: ModelSpec, device: str = "cpu", threads: int | None = None, precision: str = "fp32"):
        return cls(*_load(path, "bert", model, device, threads, precision))

    def sequence_scores(self, seqs: list[tuple[int, ...]]) -> np.ndarray:
        """Pseudo-log-likelihood: sum over positions of log p(y_i | y with y_i masked). The masked
        copies of all hypotheses go through the graph together (padded, with an attention mask)."""
        io = self.spec
        window = io.window
        seqs = [tuple(s[:window]) for s in seqs]
        owner = np.array([i for i, s in enumerate(seqs) for _ in s], np.int64)
        total = np.zeros(len(seqs))
        if not len(owner):
            return total
        pos = np.array([p for s in seqs for p in range(len(s))], np.int64)
        width = max(len(s) for s in seqs)
        base = np.zeros((len(seqs), width), np.int64)
        att = np.zeros((len(seqs), width), np.int64)
        for i, s in enumerate(seqs):
            base[i, : len(s)], att[i, : len(s)] = s, 1
        rows = max(1, self.max_tokens // width)
        for a in range(0, len(owner), rows):
            o, p = owner[a : a + rows], pos[a : a + rows]
            ids = base[o].copy()
            targets = ids[np.arange(len(o)), p].copy()
            ids[np.arange(len(o)), p] = io.mask_id
            feeds = {io.input_ids: ids, io.attention_mask: att[o], io.positions: p, io.targets: targets}
            np.add.at(total, o, run_graph(self.session, feeds)[io.token_logprobs].astype(np.float64))
        return total
