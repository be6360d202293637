"""Scorers behind one batch interface (DESIGN.md §2b guideline 2), combined by a weights dict.

A full scorer gives log-probs over the whole vocabulary for N hypotheses at once:
  init_state(rows)                 state for N fresh hypotheses (rows[i] = utterance of hypothesis i)
  score(tokens, state, rows)       (logp [N, V], next state for each of the N rows)
  select_state(state, src)         keep/reorder rows: the next step's hypothesis i continues row src[i]
The CTC prefix scorer (ctc_prefix.py) is the partial kind: it scores given candidates only."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import ModelError
from ..modelspec import BATCH, FRAMES, STEPS, StateTensor, TensorSpec
from .onnx_model import OnnxStudent


class FullScorer(Protocol):
    def init_state(self, rows: np.ndarray) -> Any: ...

    def score(self, tokens: np.ndarray, state: Any, rows: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def select_state(self, state: Any, src: np.ndarray) -> Any: ...


def initial_state(t: StateTensor, n: int, lens: np.ndarray, frames: int) -> np.ndarray:
    """A state tensor for n fresh hypotheses whose utterances have `lens` valid of `frames` frames."""
    shape = [n if d == BATCH else frames if d == FRAMES else 0 if d == STEPS else d for d in t.shape]
    if any(isinstance(d, str) for d in shape):
        raise ModelError(f"state {t.name}: cannot size the dims {list(t.shape)} (known: batch, frames, steps)")
    if t.init == "zeros":
        return np.zeros(shape, t.dtype)
    # uniform_frames: 1 / length on the valid frames, 0 on padding (the spec allows it only with FRAMES)
    value = (np.arange(frames)[None, :] < lens[:, None]) / np.maximum(lens, 1)[:, None]  # [n, frames]
    b, f = t.batch_axis, t.axis(FRAMES)
    value = value.T if b > f else value
    view = [shape[a] if a in (b, f) else 1 for a in range(len(shape))]
    return np.ascontiguousarray(np.broadcast_to(value.astype(t.dtype).reshape(view), shape))


class DecoderScorer:
    """The decoder step graph, driven by the model spec's decoder description: state tensors are
    created from their declared shapes and initial values, reordered along their batch axis, and
    fed back from their declared outputs; memory inputs are gathered per hypothesis from the
    encoder outputs they name. The gather happens only when the set of rows changes (an utterance
    finished), not every step, and cuts every frames axis to the longest live utterance: padding
    frames carry zero attention, so dropping them changes nothing but the cost (a step is
    O(rows x frames))."""

    def __init__(self, model: OnnxStudent, enc: dict[str, np.ndarray]) -> None:
        self.model = model
        self.spec = model.spec.decoder
        self.enc = enc
        self.lens = enc[model.spec.encoder.lens].astype(np.int64)
        self.frames = enc[model.spec.encoder.ctc_logprobs].shape[1]
        self._rows: np.ndarray | None = None
        self._feeds: dict[str, np.ndarray] = {}

    def init_state(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        lens = self.lens[rows]
        return {t.name: initial_state(t, len(rows), lens, self.frames) for t in self.spec.state}

    def _memory(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self._rows is None or not np.array_equal(self._rows, rows):
            self._rows = rows.copy()
            t = int(self.lens[rows].max()) if len(rows) else 0
            self._feeds = {m.name: _cut(np.take(self.enc[m.source], rows, axis=m.batch_axis), m, t)
                           for m in self.spec.memory}
        return self._feeds

    def score(self, tokens: np.ndarray, state: dict, rows: np.ndarray) -> tuple[np.ndarray, dict]:
        feeds = self._memory(rows)
        t = int(self.lens[rows].max()) if len(rows) else 0
        state = {s.name: _cut(state[s.name], s, t) for s in self.spec.state}
        out = self.model.decoder_step({self.spec.tokens: tokens.astype(np.int64), **state, **feeds})
        return out[self.spec.logprobs], {s.name: out[s.output] for s in self.spec.state}

    def select_state(self, state: dict, src: np.ndarray) -> dict:
        return {s.name: np.take(state[s.name], src, axis=s.batch_axis) for s in self.spec.state}


def _cut(x: np.ndarray, t: TensorSpec, frames: int) -> np.ndarray:
    """x cut to `frames` along the spec's FRAMES axis, if it has one and is longer."""
    axis = t.axis(FRAMES)
    if axis is None or x.shape[axis] <= frames:
        return x
    return np.ascontiguousarray(x[(slice(None),) * axis + (slice(0, frames),)])
