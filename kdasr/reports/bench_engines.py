"""The systems `kdasr bench --system` times, behind one interface: a kdasr model dir (Transcriber,
its recommended decoding or an options file from `kdasr tune`), or a reference recogniser, whisper
tiny.en / base run by faster-whisper (CTranslate2 int8) exactly as `kdasr eval-reference` runs it.
Each engine decodes a list of waveforms in one call (`decode`, the part that is timed) and maps a
raw text to the text scored (`scored`, untimed), so both kinds share bench_systems' timing code
and WER code. Torch-free; faster-whisper (ctranslate2) is imported only when a reference system
is named, and a missing `reference` extra is one error line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import KdasrError
from ..eval.tune import read_options
from ..runtime import DecodeOptions, Transcriber
from ..runtime.transcriber import Result

FASTER_WHISPER = "faster-whisper"
REFERENCE_RATE = 16000
MAX_CHUNK_S = 30.0  # faster-whisper's window: the batched pipeline decodes only a clip's first 30 s
SYSTEM_SYNTAX = ("NAME=MODEL_DIR[:OPTIONS.json] (a kdasr model dir) or NAME=faster-whisper:MODEL[:beam=N] "
                 "(MODEL tiny.en or base; beam 5 by default, as kdasr eval-reference)")


@dataclass(frozen=True)
class SystemSpec:
    name: str
    model_dir: Path | None  # None: a reference system
    options_file: Path | None = None
    reference: str | None = None  # faster-whisper's model (tiny.en, base)
    beam: int = 5  # the reference's beam


def parse_system(text: str) -> SystemSpec:
    """'NAME=MODEL_DIR', 'NAME=MODEL_DIR:OPTIONS.json' or 'NAME=faster-whisper:MODEL[:beam=N]'.
    The `faster-whisper:` prefix always names the reference (write a model dir of that name as
    ./faster-whisper:...)."""
    name, sep, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not rest:
        raise KdasrError(f"--system {text!r}: expected {SYSTEM_SYNTAX}")
    if rest.startswith(FASTER_WHISPER + ":"):
        return _reference_spec(name, rest)
    model, colon, options = rest.rpartition(":")
    if colon and options.endswith(".json") and model:
        return SystemSpec(name, Path(model), Path(options))
    return SystemSpec(name, Path(rest))


def _reference_spec(name: str, rest: str) -> SystemSpec:
    from ..whisper_reference import REFERENCE_MODELS  # no faster-whisper import: a plain module

    model, *options = rest.split(":")[1:]
    if model not in REFERENCE_MODELS:
        raise KdasrError(f"--system {name}: unknown faster-whisper model {model!r} "
                         f"(choose {' or '.join(REFERENCE_MODELS)}: {rest})")
    beam = 5
    for opt in options:
        key, _, value = opt.partition("=")
        if key != "beam" or not value.isdigit() or int(value) < 1:
            raise KdasrError(f"--system {name}: {opt!r} in {rest!r}: the only option is beam=N (N ≥ 1)")
        beam = int(value)
    return SystemSpec(name, None, reference=model, beam=beam)


class KdasrEngine:
    """A kdasr model dir, decoded with its recommended decoding (or an options file's), no VAD (as
    kdasr eval decodes manifest slices)."""

    def __init__(self, spec: SystemSpec, threads: int) -> None:
        if spec.model_dir is None or not spec.model_dir.is_dir():
            raise KdasrError(f"--system {spec.name}: {spec.model_dir}: no such model dir")
        decoding, self.lm = {}, None
        if spec.options_file is not None:
            doc = read_options(spec.options_file)
            decoding, self.lm = doc.decoding, doc.lm
        self.t = Transcriber(spec.model_dir, threads=threads, lm=self.lm, bert=self.lm, vad=False)  # as kdasr eval
        try:
            self.opts: DecodeOptions = self.t.recommended_options(**decoding)
        except ValueError as e:
            raise KdasrError(f"--system {spec.name}: {e}") from None
        self.sample_rate = self.t.sample_rate
        self.model = str(spec.model_dir)
        self.options_file = str(spec.options_file) if spec.options_file else None
        self.decoding = dataclasses.asdict(self.opts)
        self.notes: tuple[str, ...] = ()
        self.precision = self.t.model.precision  # the dir's CPU recommendation, as kdasr eval runs it
        # an imported whisper model writes cased text with digits: scored like kdasr eval scores it
        self._whisper = self.t.model.spec.architecture.get("tokenizer") == "whisper-bpe"

    def batch16_unavailable(self, waves: list[np.ndarray]) -> str | None:
        return None

    def warm_up(self, waves: list[np.ndarray]) -> None:  # session allocations, teachers loaded on first use
        self.t.transcribe(waves[:2], self.opts)

    def decode(self, waves: list[np.ndarray], batch: int) -> list[str]:
        out = []
        for r in self.t.transcribe(waves, replace(self.opts, batch_size=batch)):
            if not isinstance(r, Result):
                raise KdasrError(f"{r.source}: {r.reason}")
            out.append(r.text)
        return out

    def scored(self, text: str) -> str:
        if not self._whisper:
            return text
        from ..eval.run import _whisper_scored

        return _whisper_scored(text)


class FasterWhisperEngine:
    """whisper run by faster-whisper, int8, cpu_threads = the bench's threads. Batch 1: each
    utterance as `kdasr eval-reference` decodes it (`transcribe_reference`). Batch 16:
    BatchedInferencePipeline on the batch's utterances laid end to end, one clip each (so one
    30-s chunk per utterance, the 16 encoded and decoded together)."""

    sample_rate = REFERENCE_RATE
    options_file = None
    lm = None
    precision = "int8"  # CTranslate2 compute_type

    def __init__(self, spec: SystemSpec, threads: int) -> None:
        from ..whisper_reference import load_whisper

        try:
            self.whisper = load_whisper(threads, spec.beam, spec.reference)
        except KdasrError as e:
            raise KdasrError(f"--system {spec.name}: {e}") from None
        from faster_whisper import BatchedInferencePipeline  # installed: load_whisper imported it

        self.pipe = BatchedInferencePipeline(self.whisper)
        self.beam = spec.beam
        self.model = f"{FASTER_WHISPER}:{spec.reference}"
        self.decoding = {"engine": FASTER_WHISPER, "model": spec.reference, "compute_type": "int8",
                         "beam": spec.beam, "language": "en"}
        self.notes = (
            "faster-whisper pads every input to 30 s (its encoder always runs on 3000 log-mel frames); kdasr's "
            "students encode only the audio's own length.",
            f"Batch 1 decodes each utterance as `kdasr eval-reference` does: whisper {spec.reference}, CTranslate2 "
            f"int8, cpu_threads = the bench's threads, `WhisperModel.transcribe(language='en', beam_size={spec.beam}, "
            "condition_on_previous_text=False, vad_filter=False)` with faster-whisper's default temperature "
            "fallback (0, then 0.2 … 1.0 only when a decode fails its compression-ratio / log-prob checks); its text "
            "has numbers spelled out (num2words), then the project's normalize_text. WER/CER are from batch 1.",
            "Batch 16: faster-whisper's `BatchedInferencePipeline` on the 16 utterances laid end to end, one "
            "`clip_timestamps` entry per utterance (one 30-s chunk each, encoded and decoded as one batch), without "
            "timestamps, temperature 0 only (the batched pipeline has no fallback).",
        )

    def batch16_unavailable(self, waves: list[np.ndarray]) -> str | None:
        return batch16_unavailable(waves, self.sample_rate)

    def warm_up(self, waves: list[np.ndarray]) -> None:
        self.decode(waves[:1], 1)

    def decode(self, waves: list[np.ndarray], batch: int) -> list[str]:
        from ..whisper_reference import transcribe_reference

        if batch == 1:
            return [transcribe_reference(self.whisper, w, self.beam) for w in waves]
        starts = np.cumsum([0] + [len(w) for w in waves]) / self.sample_rate
        clips = [{"start": float(a), "end": float(b)} for a, b in zip(starts[:-1], starts[1:], strict=True)]
        segments, _ = self.pipe.transcribe(np.concatenate(waves), language="en", beam_size=self.beam,
                                           clip_timestamps=clips, batch_size=len(waves), without_timestamps=True)
        texts: list[list[str]] = [[] for _ in waves]
        for seg in segments:  # lazy: decoding happens here; each segment starts at its clip's offset
            i = int(np.searchsorted(starts, seg.start + 1e-3, side="right")) - 1
            texts[min(max(i, 0), len(waves) - 1)].append(seg.text)
        return [" ".join(t) for t in texts]

    def scored(self, text: str) -> str:
        from ..whisper_reference import normalise_hypothesis

        return normalise_hypothesis(text)


def batch16_unavailable(waves: list[np.ndarray], rate: int) -> str | None:
    """Why faster-whisper's batch 16 cannot be run on these utterances (None: it can)."""
    longest = max(len(w) for w in waves) / rate
    if longest > MAX_CHUNK_S:
        return (f"batch 16 n/a: an utterance is {longest:.1f} s long and faster-whisper's batched pipeline "
                f"decodes only the first {MAX_CHUNK_S:g} s of each clip (batch 1 decodes it whole)")
    return None


def load_engine(spec: SystemSpec, threads: int) -> KdasrEngine | FasterWhisperEngine:
    return FasterWhisperEngine(spec, threads) if spec.reference else KdasrEngine(spec, threads)


def describe_reference(decoding: dict) -> str:
    d = decoding
    return f"{FASTER_WHISPER} {d.get('model')} {d.get('compute_type', 'int8')}, beam {d.get('beam')}"
