"""One row of the whisper head-to-head, in its own process so that its peak RSS is its own:
  python -m kdasr.reports.whisper_h2h_worker SPEC_JSON   (a RunSpec; prints a Measured as JSON)
Imports only the side it measures (onnxruntime for kdasr, ctranslate2 for faster-whisper).

What each side runs (the report says the same):
- kdasr: Transcriber(model dir, threads, precision), the model's recommended decoding at `beam`
  (beam search, score / length), batch_size = the row's batch. Short utterances: vad=False, each
  call one utterance (batch 1) or 16 in manifest order (batch 16). Long file: one call with the
  Silero VAD, speech regions closer than merge_gap_s joined into pieces of at most max_segment_s
  (cut at pauses; as faster-whisper joins them into chunks of at most 30 s), `batch` pieces per decode.
- faster-whisper: WhisperModel(CT2 folder, compute_type int8 (float32 for the parity row),
  cpu_threads), language en,
  beam_size `beam`, without_timestamps, condition_on_previous_text False, temperature 0 only (no
  fallback), no no-speech skipping. Short, batch 1: WhisperModel.transcribe per utterance, no VAD.
  Short, batch 16: BatchedInferencePipeline.transcribe on the 16 utterances of a batch laid end
  to end, one clip_timestamps entry per utterance (so each utterance is one chunk, padded to 30 s
  like the rest). Long file: BatchedInferencePipeline with its Silero VAD (chunks of at most 30 s)
  at batch_size = the row's batch.
Each process decodes one utterance (or 3 s of the long file) untimed first: session warm-up."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..data.manifest import read_manifest
from .whisper_h2h_records import FASTER_WHISPER, FW_FP32, KDASR_INT8, LONG, Measured, RunSpec

RATE = 16000


def load_set(spec: RunSpec) -> tuple[list[str], list[np.ndarray]]:
    if spec.audio == LONG:
        return [Path(spec.long_file).stem], [load_audio(spec.long_file, RATE)]
    utts = read_manifest(spec.manifest)[: spec.limit or None]
    return [u.id for u in utts], [load_audio(u.audio, start=u.start, duration=u.duration) for u in utts]


def _clock():
    return time.perf_counter(), time.process_time()


class _Timer:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __call__(self, fn):
        w0, c0 = _clock()
        out = fn()
        w1, c1 = _clock()
        self.wall += w1 - w0
        self.cpu += c1 - c0
        return out, w1 - w0


def _groups(n: int, batch: int) -> list[range]:
    return [range(i, min(n, i + batch)) for i in range(0, n, batch)]


def kdasr_side(spec: RunSpec, waves: list[np.ndarray], timer: _Timer) -> tuple[list[str], list[float], float]:
    from ..runtime.transcriber import Failure, Transcriber
    from ..runtime.vad import VadOptions

    w0 = time.perf_counter()
    vad = VadOptions(merge_gap_s=spec.merge_gap_s) if spec.audio == LONG else False
    t = Transcriber(spec.model_dir, threads=spec.threads, precision="int8" if spec.system == KDASR_INT8 else "fp32",
                    vad=vad)
    opts = t.recommended_options(beam=spec.beam, batch_size=spec.batch, max_segment_seconds=spec.max_segment_s)
    load_s = time.perf_counter() - w0
    t.transcribe([waves[0][: 3 * RATE]], opts)  # warm-up, untimed

    def run(group: list[np.ndarray]) -> list[str]:
        out = t.transcribe(group, opts)
        bad = [r for r in out if isinstance(r, Failure)]
        if bad:
            raise SystemExit(f"{bad[0].source}: {bad[0].reason}")
        return [r.text for r in out]

    texts, lat = [], []
    for g in _groups(len(waves), spec.batch if spec.audio != LONG else 1):
        out, secs = timer(lambda g=g: run([waves[i] for i in g]))
        texts += out
        lat += [secs] * len(g)
    return texts, lat, load_s


FW_COMMON = {"language": "en", "without_timestamps": True, "condition_on_previous_text": False,
             "temperature": 0.0, "no_speech_threshold": None}


def fw_side(spec: RunSpec, waves: list[np.ndarray], timer: _Timer) -> tuple[list[str], list[float], float]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    w0 = time.perf_counter()
    compute = "float32" if spec.system == FW_FP32 else "int8"
    model = WhisperModel(spec.model_dir, device="cpu", compute_type=compute, cpu_threads=spec.threads,
                         local_files_only=True)
    pipe = BatchedInferencePipeline(model)
    load_s = time.perf_counter() - w0
    opts = {**FW_COMMON, "beam_size": spec.beam}

    def one(w: np.ndarray) -> list[str]:
        segments, _ = model.transcribe(w, vad_filter=False, **opts)
        return [" ".join(s.text.strip() for s in segments)]

    def batched(group: list[np.ndarray]) -> list[str]:
        """The group's utterances end to end, one clip each: one chunk (one batch row) per utterance."""
        starts = np.cumsum([0] + [len(w) for w in group])
        clips = [{"start": starts[i] / RATE, "end": starts[i + 1] / RATE} for i in range(len(group))]
        segments, _ = pipe.transcribe(np.concatenate(group), clip_timestamps=clips, batch_size=len(group), **opts)
        texts = [[] for _ in group]
        for s in segments:  # each segment starts at its chunk's offset
            texts[int(np.searchsorted(starts / RATE, s.start + 1e-3, side="right")) - 1].append(s.text.strip())
        return [" ".join(t) for t in texts]

    def long(w: np.ndarray) -> list[str]:
        segments, _ = pipe.transcribe(w, vad_filter=True, batch_size=spec.batch, **opts)
        return [" ".join(s.text.strip() for s in segments)]

    if spec.audio == LONG:
        long(waves[0][: 3 * RATE])
        out, secs = timer(lambda: long(waves[0]))
        return out, [secs], load_s
    one(waves[0])  # warm-up, untimed
    texts, lat = [], []
    for g in _groups(len(waves), spec.batch):
        group = [waves[i] for i in g]
        out, secs = timer(lambda group=group: one(group[0]) if spec.batch == 1 else batched(group))
        texts += out
        lat += [secs] * len(g)
    return texts, lat, load_s


def measure(spec: RunSpec) -> Measured:
    ids, waves = load_set(spec)
    timer = _Timer()
    side = fw_side if spec.system in FASTER_WHISPER else kdasr_side
    texts, lat, load_s = side(spec, waves, timer)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    audio_s = sum(len(w) for w in waves) / RATE
    return Measured(ids, texts, lat, timer.wall, timer.cpu, load_s, audio_s, rss_mb)


def main() -> None:
    from dataclasses import asdict

    spec = RunSpec.from_json(sys.argv[1])
    print(json.dumps(asdict(measure(spec))))


if __name__ == "__main__":
    main()
