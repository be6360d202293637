"""Give a long file's peak memory back after it is decoded (a server lives for weeks).

onnxruntime's CPU arena keeps every block it ever grew to, so one 10-minute upload would pin its
peak for the life of the process; the run option `memory.enable_memory_arena_shrinkage` returns the
encoder's arena to the OS after a run on much audio. glibc then still holds freed heap pages, which
`malloc_trim(0)` releases; it is called only after batches with much audio (it costs a few ms).
Measured on export/demo-en, 160 s of audio (peak RSS 198-214 MB, start 96 MB): neither -> 190 MB after;
malloc_trim alone -> 172 MB; both -> 100 MB. The decoder's arena is left alone (a step's tensors are
small and shrinking it every step cost time without lowering RSS)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import onnxruntime as ort

TRIM_AFTER_SECONDS = 60.0  # audio in one batch (or one encoder call) above which memory is given back


class ArenaShrinkingSession:
    """An InferenceSession that shrinks its CPU arena after a run whose first input (the padded
    waveform batch) has more than `min_elements` values; smaller runs keep the arena (shrinking after
    every run cost ~20 % of short-request throughput in the load test). All else is delegated."""

    def __init__(self, session: ort.InferenceSession, min_elements: int) -> None:
        self._session, self._min_elements = session, min_elements
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names, input_feed, run_options=None):
        first = next(iter(input_feed.values()), None)
        big = first is not None and getattr(first, "size", 0) > self._min_elements
        return self._session.run(output_names, input_feed, run_options or (self._run_options if big else None))

    def __getattr__(self, name):
        return getattr(self._session, name)


def shrink_encoder_arena(transcriber) -> None:
    model = transcriber.model
    if not isinstance(model.encoder, ArenaShrinkingSession):
        model.encoder = ArenaShrinkingSession(model.encoder, int(TRIM_AFTER_SECONDS * transcriber.sample_rate))


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None  # glibc only


def trim_heap() -> bool:
    """Return freed heap pages to the OS (glibc); False where there is no malloc_trim (musl, macOS)."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
