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
from .onnx_model import check_graph_entry, load_graph, read_json, run_graph
from .scorers import select_rows

# keys each teacher description must hold beside vocab_size, special_ids and graphs (kind -> keys)
TEACHER_KEYS = {"lm": ("cache",), "bert": ("window", "mask_id")}


def _load(path: str | Path, kind: str, model_info: dict, device: str, threads: int | None, precision: str):
    path = Path(path)
    json_path = path / f"{kind}.json"
    info = read_json(json_path, kind)
    for key in ("vocab_size", "special_ids", "graphs", *TEACHER_KEYS[kind]):
        if key not in info:
            raise ModelError(f"{json_path}: missing required key '{key}'")
    ids = info["special_ids"]
    if not isinstance(ids, dict) or any(not isinstance(ids.get(k), int) for k in ("pad", "bos", "eos")):
        raise ModelError(f"{json_path}: special_ids must give integer pad, bos and eos ids")
    if info["vocab_size"] != model_info["vocab_size"] or ids["eos"] != model_info["special_ids"]["eos"]:
        raise ModelError(f"{path}: the {kind} uses other units than the model (vocab or special ids differ)")
    entry = check_graph_entry(json_path, info["graphs"], kind)
    if precision != "fp32" and precision not in entry:
        precision = "fp32"  # a teacher exported without that variant runs at fp32
    return info, load_graph(path, json_path, kind, entry, precision, device, threads)


class LMScorer:
    """FullScorer over the LM step graph; state = the KV cache [L, 2, N, H, t, dh]."""

    def __init__(self, lm: OnnxLM) -> None:
        self.lm = lm

    def init_state(self, rows: np.ndarray) -> np.ndarray:
        return self.lm.empty_cache(len(rows))

    def score(self, tokens: np.ndarray, state: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = run_graph(self.lm.session, {"tokens": tokens.astype(np.int64), "cache": state})
        return out["logprobs"], out["cache_out"]

    def select_state(self, state: np.ndarray, src: np.ndarray) -> np.ndarray:
        return select_rows({"c": state}, src, axis=2)["c"]


@dataclass
class OnnxLM:
    info: dict
    session: ort.InferenceSession

    @classmethod
    def load(cls, path, model_info: dict, device: str = "cpu", threads: int | None = None, precision: str = "fp32"):
        return cls(*_load(path, "lm", model_info, device, threads, precision))

    def empty_cache(self, n: int) -> np.ndarray:
        layers, two, _, heads, _, dh = self.info["cache"]
        return np.zeros((layers, two, n, heads, 0, dh), np.float32)

    def scorer(self) -> LMScorer:
        return LMScorer(self)

    def sequence_scores(self, seqs: list[tuple[int, ...]]) -> np.ndarray:
        """log p(y <eos>) for every sequence, all in one batch, one step call per position."""
        ids = self.info["special_ids"]
        n, width = len(seqs), max(len(s) for s in seqs) + 1
        inputs = np.full((n, width), ids["pad"], np.int64)
        targets = np.full((n, width), -1, np.int64)
        for i, s in enumerate(seqs):
            inputs[i, : len(s) + 1] = (ids["bos"], *s)
            targets[i, : len(s) + 1] = (*s, ids["eos"])
        total, cache = np.zeros(n), self.empty_cache(n)
        for t in range(width):
            out = run_graph(self.session, {"tokens": inputs[:, t], "cache": cache})
            cache = out["cache_out"]
            valid = targets[:, t] >= 0
            total[valid] += out["logprobs"][valid, targets[valid, t]]
        return total


@dataclass
class OnnxBert:
    info: dict
    session: ort.InferenceSession
    max_rows: int = 4096  # rows (hypothesis x masked position) per graph call

    @classmethod
    def load(cls, path, model_info: dict, device: str = "cpu", threads: int | None = None, precision: str = "fp32"):
        return cls(*_load(path, "bert", model_info, device, threads, precision))

    def sequence_scores(self, seqs: list[tuple[int, ...]]) -> np.ndarray:
        """Pseudo-log-likelihood: sum over positions of log p(y_i | y with y_i masked). The masked
        copies of all hypotheses go through the graph together (padded, with an attention mask)."""
        window = int(self.info["window"])
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
        for a in range(0, len(owner), self.max_rows):
            o, p = owner[a : a + self.max_rows], pos[a : a + self.max_rows]
            ids = base[o].copy()
            targets = ids[np.arange(len(o)), p].copy()
            ids[np.arange(len(o)), p] = self.info["mask_id"]
            feeds = {"input_ids": ids, "attention_mask": att[o], "positions": p, "targets": targets}
            np.add.at(total, o, run_graph(self.session, feeds)["token_logprobs"].astype(np.float64))
        return total
