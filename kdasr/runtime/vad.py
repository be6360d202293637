"""Voice-activity detection: Silero VAD run with onnxruntime, block by block, torch-free.

The model file is Silero's `silero_vad_16k_sequence.onnx` (MIT licence, `vad_model/LICENSE`), copied
from the silero-vad 6.2.3 wheel: that wheel declares torch as a hard requirement, so depending on it
would put torch into the deployment install; the graph itself needs only onnxruntime. The sequence
variant scores a whole block of 32 ms frames per call with the LSTM state carried in and out, so a
long file is scored in bounded memory and with few Python round trips.

`VadStream.feed(block)` returns one speech probability per 512-sample frame; `speech_regions`
turns the probabilities into padded (start, end) sample spans of speech."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..defaults import VAD_DEFAULT  # noqa: F401  (re-exported: the runtime's default)
from ..errors import ModelError

MODEL_FILE = Path(__file__).with_name("vad_model") / "silero_vad_16k_sequence.onnx"
VAD_RATE = 16000
FRAME = 512  # samples per probability at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees before each frame
MAX_FRAMES = 512  # frames per onnxruntime call (~16 s)


@dataclass(frozen=True)
class VadOptions:
    """Speech = frames with probability >= threshold (leaving speech below threshold - 0.15);
    speech shorter than min_speech_s is dropped, pauses shorter than min_silence_s are bridged,
    and each region is widened by pad_s on both sides (so word edges are not clipped). Regions
    are decoded one by one unless closer than merge_gap_s (and within max_segment_seconds together):
    the shipped model was trained on single sentences and decodes them best alone (6 min of
    concatenated samples, greedy: 46.8 % WER with merge_gap_s 0, 88.3 % with 1 s; robustness.md)."""

    enabled: bool = True
    threshold: float = 0.5
    min_speech_s: float = 0.25
    min_silence_s: float = 0.5
    pad_s: float = 0.2
    merge_gap_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("VAD threshold must be within (0, 1)")
        if min(self.min_speech_s, self.min_silence_s, self.pad_s, self.merge_gap_s) < 0:
            raise ValueError("VAD durations must be >= 0")


class SileroVad:
    """One onnxruntime session (single-threaded: the VAD is ~1 % of decoding time)."""

    def __init__(self, path: Path = MODEL_FILE) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelError(f"{path}: VAD model missing from the installed package")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    def stream(self) -> VadStream:
        return VadStream(self.session)


class VadStream:
    """Probabilities for consecutive blocks of one 16 kHz signal; any block sizes."""

    def __init__(self, session) -> None:
        self._session = session
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)  # samples not yet making a whole frame

    def feed(self, block: np.ndarray, final: bool = False) -> np.ndarray:
        x = np.concatenate([self._pending, np.asarray(block, np.float32)])
        n = len(x) // FRAME
        if final and len(x) > n * FRAME:  # the last partial frame, zero-padded
            x = np.concatenate([x, np.zeros((n + 1) * FRAME - len(x), np.float32)])
            n += 1
        self._pending = x[n * FRAME :]
        out = []
        for first in range(0, n, MAX_FRAMES):
            frames = x[first * FRAME : min(n, first + MAX_FRAMES) * FRAME].reshape(-1, FRAME)
            ctx = np.empty((len(frames), CONTEXT), np.float32)
            ctx[0] = self._context
            ctx[1:] = frames[:-1, -CONTEXT:]
            self._context = frames[-1, -CONTEXT:].copy()
            feeds = {"input": np.concatenate([ctx, frames], axis=1), "h": self._h, "c": self._c}
            probs, self._h, self._c = self._session.run(["speech_probs", "hn", "cn"], feeds)
            out.append(probs.reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def speech_regions(probs: np.ndarray, total: int, opts: VadOptions) -> list[tuple[int, int]]:
    """[(start, end)] 16 kHz sample spans of speech within [0, total), sorted and disjoint."""
    low = max(opts.threshold - 0.15, 0.01)
    raw, start, speaking = [], 0, False
    for i, p in enumerate(probs):  # hysteresis: enter at threshold, leave below threshold - 0.15
        if not speaking and p >= opts.threshold:
            speaking, start = True, i
        elif speaking and p < low:
            speaking = False
            raw.append((start, i))
    if speaking:
        raw.append((start, len(probs)))
    gap = round(opts.min_silence_s * VAD_RATE / FRAME)  # in frames
    merged: list[list[int]] = []
    for a, b in raw:
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    pad_n, min_n = round(opts.pad_s * VAD_RATE), round(opts.min_speech_s * VAD_RATE)
    spans: list[tuple[int, int]] = []
    for a, b in merged:
        a_s, b_s = a * FRAME, min(total, b * FRAME)
        if b_s - a_s < min_n:
            continue
        a_s, b_s = max(0, a_s - pad_n), min(total, b_s + pad_n)
        if spans and a_s <= spans[-1][1]:  # padding made neighbours touch
            spans[-1] = (spans[-1][0], b_s)
        else:
            spans.append((a_s, b_s))
    return spans
