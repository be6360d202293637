"""Scorers behind one batch interface (DESIGN.md §2b guideline 2), combined by a weights dict.

A full scorer gives log-probs over the whole vocabulary for N hypotheses at once:
  init_state(rows)                 state for N fresh hypotheses (rows[i] = utterance of hypothesis i)
  score(tokens, state, rows)       (logp [N, V], next state for each of the N rows)
  select_state(state, src)         keep/reorder rows: the next step's hypothesis i continues row src[i]
The CTC prefix scorer (ctc_prefix.py) is the partial kind: it scores given candidates only:
  init_state(rows); score(state, rows, cand, step) -> (scores [N, M], pending); select(pending, cand, src, col)
The length bonus is the per-token kind: `per_token` added for every token (LengthBonus).
A scorer's kind is its `kind` attribute (absent: full); beam.StepScores combines them."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ...errors import ModelError
from ...spec.graph_spec import BATCH, FRAMES, STEPS, StateTensor, TensorSpec
from ..onnx_model import OnnxStudent


class FullScorer(Protocol):
    def init_state(self, rows: np.ndarray) -> Any: ...

    def score(self, tokens: np.ndarray, state: Any, rows: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def select_state(self, state: Any, src: np.ndarray) -> Any: ...


FULL, PARTIAL, PER_TOKEN = "full", "partial", "per_token"
Scorer = Any  # a full, partial or per-token scorer (see above)


def kind_of(scorer: Scorer) -> str:
    return getattr(scorer, "kind", FULL)


class LengthBonus:
    """+1 per token, times its weight (DecodeOptions.length_bonus): counters the search's preference
    for short hypotheses (every token's log-prob is <= 0)."""

    kind = PER_TOKEN
    per_token = 1.0


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


SPLIT_GAIN = 0.1  # a step call is split in two where that saves this share of its rows x frames
MAX_CALLS = 4  # step calls per step at most (frame_groups; CPU_DECODER_ROW_FRAMES may split them further)
# Hypothesis rows x frames per step call on the CPU. The step's attention makes several passes over
# an [N, T, A] tensor, fastest while it stays in the core's cache: per hypothesis at 135 frames,
# 37-40 us in calls of 20 rows, 43-49 at 40, ~60 at 160; at 250 frames 65-79 us at 10-20 rows, 88
# at 40 (demo-en's step graph alone, 1 thread, best of 7 x 30 calls). End to end, search CPU s on
# 100 test_heldout utterances at beam 10 + CTC 0.2 (best of 6, interleaved): 2.84 uncapped, 2.67
# at 5,400, 2.56 at 2,700. A GPU gets all rows in one call.
CPU_DECODER_ROW_FRAMES = 2700


def frame_groups(lens: np.ndarray) -> list[slice]:
    """Contiguous row ranges, each fed as its own step call cut to its longest row: a step costs
    O(rows x frames), so rows of short utterances beside long ones (a length-sorted batch) need
    not pay for the long ones' frames. Split greedily, where a split saves SPLIT_GAIN of its range."""
    groups = [slice(0, len(lens))]
    while len(groups) < MAX_CALLS:
        best = None
        for i, g in enumerate(groups):
            x = lens[g]
            if len(x) < 2:
                continue
            n = len(x)
            head = np.maximum.accumulate(x)[:-1] * np.arange(1, n)  # rows [0, s) at their longest
            tail = np.maximum.accumulate(x[::-1])[::-1][1:] * np.arange(n - 1, 0, -1)
            cost = head + tail
            s = int(np.argmin(cost))
            gain = n * int(x.max()) - int(cost[s])
            if gain >= SPLIT_GAIN * n * int(x.max()) and (best is None or gain > best[0]):
                best = (gain, i, g.start + s + 1)
        if best is None:
            break
        _, i, cut = best
        g = groups[i]
        groups[i : i + 1] = [slice(g.start, cut), slice(cut, g.stop)]
    return groups


def _chunks(g: slice, most: int) -> list[slice]:
    """g cut into consecutive ranges of at most `most` (as equal as possible)."""
    n = g.stop - g.start
    parts = -(-n // most)
    cuts = [g.start + n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(cuts, cuts[1:])]


def hypothesis_blocks(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """rows (the utterance of each hypothesis) in equal consecutive blocks -> (the blocks'
    utterances, hypotheses per block): the layout a step graph with per-utterance memory needs."""
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    k = len(rows) // len(starts)
    if not np.array_equal(np.repeat(rows[starts], k), rows):
        raise ModelError("the decoder step shares memory per utterance, so its hypothesis rows must come "
                         f"in equal consecutive blocks per utterance (got utterances {rows[:12].tolist()} ...)")
    return rows[starts], k


class DecoderScorer:
    """The decoder step graph, driven by the model spec's decoder description: state tensors are
    created from their declared shapes and initial values, reordered along their batch axis, and
    fed back from their declared outputs; memory inputs are taken from the encoder outputs they
    name, one row per utterance (format 3: the graph broadcasts them over the utterance's
    hypotheses, which then come in equal consecutive blocks) or gathered per hypothesis (older
    dirs). The gather happens only when the set of rows changes (an utterance finished), not
    every step, and cuts every frames axis to the longest live utterance of its
    call: padding frames carry zero attention, so dropping them changes nothing but the cost (a
    step is O(rows x frames)); rows of much shorter utterances go in a call of their own
    (`frame_groups`), at most CPU_DECODER_ROW_FRAMES rows x frames a call on the CPU, and the outputs are joined
    with zero attention on the frames cut."""

    def __init__(self, model: OnnxStudent, enc: dict[str, np.ndarray]) -> None:
        self.model = model
        self.spec = model.spec.decoder
        self.enc = enc
        self.lens = enc[model.spec.encoder.lens].astype(np.int64)
        ctc = model.spec.encoder.ctc_logprobs
        self.frames = enc[ctc].shape[1] if ctc else int(self.lens.max(initial=0))
        self._rows: np.ndarray | None = None
        self._groups: list[tuple[slice, int, dict[str, np.ndarray]]] = []
        self._shared = any(m.per_utterance for m in self.spec.memory)

    def init_state(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Fresh state for these rows; a spec'd prompt (whisper's <|startoftranscript|> ...) is fed
        through the step first, so the search starts after it from special_ids.bos."""
        lens = self.lens[rows]
        state = {t.name: initial_state(t, len(rows), lens, self.frames) for t in self.spec.state}
        for token in self.spec.prompt:
            _, state = self.score(np.full(len(rows), token, np.int64), state, rows)
        return state

    def _calls(self, rows: np.ndarray) -> list[tuple[slice, int, dict[str, np.ndarray]]]:
        """(hypothesis rows, frames, memory feeds) of each step call for these rows, made when they change."""
        if self._rows is None or not np.array_equal(self._rows, rows):
            self._rows = rows.copy()
            self._groups = []
            utts, k = hypothesis_blocks(rows) if self._shared and len(rows) else (rows, 1)
            lens = self.lens[utts]
            groups = frame_groups(lens) if len(rows) else []
            for g in (c for f in groups for c in _chunks(f, self._per_call(lens[f], k))):
                t, hyps = int(lens[g].max()), slice(g.start * k, g.stop * k)
                # cut to the live frames before the gather: one copy of what the step reads, not two
                feeds = {m.name: np.take(_cut(self.enc[m.source], m, t, copy=False),
                                         utts[g] if m.per_utterance else rows[hyps], axis=m.batch_axis)
                         for m in self.spec.memory}
                self._groups.append((hyps, t, feeds))
        return self._groups

    def _per_call(self, lens: np.ndarray, k: int) -> int:
        """Utterances per step call for a group of these frame lengths with k hypotheses each."""
        # whisper's step is dominated by its 51,864-way output projection, which gains from more rows
        # per call, not by attention over frames: 8 samples at 30 s padding, beam 5, 1 thread, took
        # 7.9-8.8 CPU s in one call per step against 9.7-9.8 s under the row x frames cap
        if self.model.device != "cpu" or self.model.spec.architecture.get("decoder") == "whisper":
            return len(lens)
        return max(1, CPU_DECODER_ROW_FRAMES // (k * max(int(lens.max()), 1)))

    def score(self, tokens: np.ndarray, state: dict, rows: np.ndarray) -> tuple[np.ndarray, dict]:
        outs = []
        for g, t, feeds in self._calls(rows):
            part = {s.name: _cut(_rows(state[s.name], s, g), s, t) for s in self.spec.state}
            outs.append(self.model.decoder_step({self.spec.tokens: tokens[g].astype(np.int64), **part, **feeds}))
        if len(outs) == 1:
            out = outs[0]
            return out[self.spec.logprobs], {s.name: out[s.output] for s in self.spec.state}
        logp = np.concatenate([o[self.spec.logprobs] for o in outs])
        return logp, {s.name: _join([o[s.output] for o in outs], s) for s in self.spec.state}

    def select_state(self, state: dict, src: np.ndarray) -> dict:
        return {s.name: np.take(state[s.name], src, axis=s.batch_axis) for s in self.spec.state}


def _cut(x: np.ndarray, t: TensorSpec, frames: int, copy: bool = True) -> np.ndarray:
    """x cut to `frames` along the spec's FRAMES axis, if it has one and is longer (copy=False: a view)."""
    axis = t.axis(FRAMES)
    if axis is None or x.shape[axis] <= frames:
        return x
    cut = x[(slice(None),) * axis + (slice(0, frames),)]
    return np.ascontiguousarray(cut) if copy else cut


def _rows(x: np.ndarray, t: TensorSpec, g: slice) -> np.ndarray:
    if g.start == 0 and g.stop == x.shape[t.batch_axis]:
        return x
    return x[(slice(None),) * t.batch_axis + (g,)]


def _join(parts: list[np.ndarray], t: TensorSpec) -> np.ndarray:
    """State outputs of several calls joined along the batch axis; a frames axis padded with zeros
    to the longest (the frames a call was cut to have zero attention). One copy of each part into
    a zeroed array: np.pad then np.concatenate copied twice, at ~50 us of np.pad overhead a part."""
    axis, batch = t.axis(FRAMES), t.batch_axis
    if axis is None:
        return np.concatenate(parts, axis=batch)
    shape = list(parts[0].shape)
    shape[axis] = max(p.shape[axis] for p in parts)
    shape[batch] = sum(p.shape[batch] for p in parts)
    out = np.zeros(shape, parts[0].dtype)
    at = 0
    for p in parts:
        where = [slice(None)] * p.ndim
        where[batch], where[axis] = slice(at, at + p.shape[batch]), slice(0, p.shape[axis])
        out[tuple(where)] = p
        at += p.shape[batch]
    return out
