"""Scorers behind one batch interface (DESIGN.md §2b guideline 2), combined by a weights dict.

A full scorer gives log-probs over the whole vocabulary for N hypotheses at once:
  init_state(rows)                 state for N fresh hypotheses (rows[i] = utterance of hypothesis i)
  score(tokens, state, rows)       (logp [N, V], next state for each of the N rows)
  select_state(state, src)         keep/reorder rows: the next step's hypothesis i continues row src[i]
The CTC prefix scorer (ctc_prefix.py) is the partial kind: it scores given candidates only."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .onnx_model import OnnxStudent


class FullScorer(Protocol):
    def init_state(self, rows: np.ndarray) -> Any: ...

    def score(self, tokens: np.ndarray, state: Any, rows: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def select_state(self, state: Any, src: np.ndarray) -> Any: ...


def select_rows(state: dict[str, np.ndarray], src: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    return {k: np.take(v, src, axis=axis) for k, v in state.items()}


class DecoderScorer:
    """The attention decoder step graph. Encoder outputs are gathered per hypothesis only when
    the set of rows changes (an utterance finished), not every step, and cut to the longest live
    utterance then: padding frames carry zero attention, so dropping them changes nothing but
    the cost (a step is O(rows x frames))."""

    def __init__(self, model: OnnxStudent, enc: dict[str, np.ndarray]) -> None:
        self.model = model
        self.memory, self.keys = enc["memory"], enc["memory_keys"]
        self.lens = enc["memory_lens"].astype(np.int64)
        self._rows: np.ndarray | None = None
        self._feeds: dict[str, np.ndarray] = {}

    def init_state(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        st = self.model.info["decoder_state"]
        n, frames = len(rows), self.memory.shape[1]
        lens = self.lens[rows]
        valid = np.arange(frames)[None, :] < lens[:, None]
        return {
            "h": np.zeros((n, st["h"][0]), np.float32),
            "c": np.zeros((n, st["c"][0]), np.float32),
            "context": np.zeros((n, st["context"][0]), np.float32),
            "attention": (valid / np.maximum(lens, 1)[:, None]).astype(np.float32),
        }

    def _memory(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self._rows is None or not np.array_equal(self._rows, rows):
            self._rows = rows.copy()
            lens = self.lens[rows]
            t = int(lens.max()) if len(rows) else 0
            self._feeds = {"memory": self.memory[rows, :t], "memory_keys": self.keys[rows, :t], "memory_lens": lens}
        return self._feeds

    def score(self, tokens: np.ndarray, state: dict, rows: np.ndarray) -> tuple[np.ndarray, dict]:
        feeds = self._memory(rows)
        t = feeds["memory"].shape[1]
        if state["attention"].shape[1] > t:
            state = {**state, "attention": np.ascontiguousarray(state["attention"][:, :t])}
        out = self.model.decoder_step({"tokens": tokens.astype(np.int64), **state, **feeds})
        return out["logprobs"], {k: out[f"{k}_out"] for k in state}

    def select_state(self, state: dict, src: np.ndarray) -> dict:
        return select_rows(state, src)
