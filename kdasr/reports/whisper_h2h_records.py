"""Typed records of the whisper head-to-head (`kdasr bench-whisper`, issue 29 items 2-4), and how
they are built from what a measurement returns. Measuring (whisper_h2h.py, whisper_h2h_worker.py)
makes these; writing (whisper_h2h_writer.py) reads only these. Torch-free, no onnxruntime."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata

import numpy as np

from ..eval.wer import error_rates
from ..machine import cpu_has_amx, cpu_model
from ..whisper_reference import normalise_hypothesis

KDASR_FP32, KDASR_INT8, FW_INT8 = "kdasr fp32", "kdasr int8", "faster-whisper int8"
FW_FP32 = "faster-whisper float32"  # parity only: the same arithmetic as kdasr fp32
SYSTEMS = (KDASR_FP32, KDASR_INT8, FW_INT8)  # the head-to-head's
FASTER_WHISPER = (FW_INT8, FW_FP32)
SHORT, LONG = "short", "long"
REPORT_FORMAT = 1


@dataclass(frozen=True)
class RunSpec:
    """One measured row: a system decoding one audio set at one thread count and batch size, run
    in its own process (so its peak RSS is its own). model_dir: kdasr's model dir, or for
    faster-whisper the CTranslate2 folder the kdasr dir was imported from."""

    model: str  # tiny.en | base
    system: str  # one of SYSTEMS
    model_dir: str
    threads: int
    batch: int
    audio: str  # SHORT: utterances of `manifest` (first `limit`); LONG: the file `long_file`
    beam: int = 5
    manifest: str = ""
    limit: int = 0
    long_file: str = ""  # a .flac with a .json beside it (ids, references)
    variant: str = ""  # padding comparison: the variant's name ("" = head-to-head row)
    merge_gap_s: float = 0.0  # kdasr, long file: VAD regions closer than this are decoded as one piece
    max_segment_s: float = 20.0  # kdasr, long file: pieces at most this long (cut at pauses)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> RunSpec:
        return RunSpec(**json.loads(text))


@dataclass(frozen=True)
class Measured:
    """What a worker returns for one RunSpec: raw texts, per-utterance latencies (batch 16: the
    batch's wall time for each of its utterances; long audio: the file's), totals, peak RSS."""

    ids: list[str]
    texts: list[str]
    latencies_s: list[float]
    wall_s: float  # summed wall time of the decode calls (each call once)
    cpu_s: float  # process CPU time over the same calls (all threads)
    load_s: float  # loading the model (sessions), not in wall_s
    audio_s: float
    peak_rss_mb: float  # the worker process's ru_maxrss: Python, libraries, model, audio


@dataclass(frozen=True)
class RunRecord:
    spec: RunSpec
    measured: Measured
    refs: list[str | None]  # normalised references; None: not scorable (digits)
    wer: float | None  # %, normalised hypotheses (numbers spelled out) against the scorable references
    words_ratio: float | None  # hypothesis words / reference words (> 1: repetition)

    @property
    def rtfx(self) -> float:
        return self.measured.audio_s / self.measured.wall_s if self.measured.wall_s > 0 else float("inf")

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(1000 * np.asarray(self.measured.latencies_s), q))

    @property
    def hyps(self) -> list[str]:
        return [normalise_hypothesis(t) for t in self.measured.texts]


def build_run(spec: RunSpec, measured: Measured, refs: list[str | None]) -> RunRecord:
    """WER over the scorable utterances (kdasr eval's whisper policy: both sides normalised, the
    hypothesis's numbers spelled out); for the long file `refs` is one joined reference."""
    if len(refs) != len(measured.texts):
        raise ValueError(f"{spec.system}: {len(measured.texts)} texts for {len(refs)} references")
    keep = [i for i, r in enumerate(refs) if r is not None]
    if not keep:
        return RunRecord(spec, measured, refs, None, None)
    hyps = [normalise_hypothesis(measured.texts[i]) for i in keep]
    ref_kept = [refs[i] for i in keep]
    ref_words = sum(len(r.split()) for r in ref_kept)
    ratio = sum(len(h.split()) for h in hyps) / ref_words if ref_words else None
    return RunRecord(spec, measured, refs, error_rates(ref_kept, hyps).wer, ratio)


@dataclass(frozen=True)
class ParityRecord:
    """kdasr's normalised 1-best against faster-whisper's on the same utterances, beam and padding."""

    model: str
    manifest: str
    kdasr: str  # the kdasr row, e.g. "kdasr fp32, 2 threads, batch 1"
    reference: str  # the faster-whisper row
    utterances: int
    identical: int

    @property
    def share(self) -> float:
        return self.identical / self.utterances if self.utterances else 0.0


def row_name(spec: RunSpec) -> str:
    return f"{spec.system}, {spec.threads} thread{'s' if spec.threads > 1 else ''}, batch {spec.batch}"


def same_one_best(a: RunRecord, b: RunRecord) -> int:
    if a.measured.ids != b.measured.ids:
        raise ValueError(f"{row_name(a.spec)} and {row_name(b.spec)} decoded other utterances")
    return sum(x == y for x, y in zip(a.hyps, b.hyps, strict=True))


def parity(runs: list[RunRecord]) -> list[ParityRecord]:
    """Every kdasr row on short utterances against each faster-whisper row (int8, float32) with the
    same model, utterances, beam, threads and batch (in the padding comparison also kdasr's
    unpadded rows)."""
    def key(r: RunRecord) -> tuple:
        return r.spec.model, r.spec.manifest, r.spec.limit, r.spec.beam, r.spec.threads, r.spec.batch

    fw = [r for r in runs if r.spec.system in FASTER_WHISPER and r.spec.audio == SHORT]
    out = []
    for r in runs:
        if r.spec.system in FASTER_WHISPER or r.spec.audio != SHORT:
            continue
        for ref in (f for f in fw if key(f) == key(r)):
            name = row_name(r.spec) + (f" ({r.spec.variant})" if r.spec.variant else "")
            out.append(ParityRecord(r.spec.model, r.spec.manifest, name, row_name(ref.spec), len(r.hyps),
                                    same_one_best(r, ref)))
    return out


@dataclass(frozen=True)
class PaddingVariant:
    name: str  # e.g. "padded to 30 s (default)"
    how: str  # one line: what the encoder sees
    unpadded_dir: bool  # decoded with the --no-pad-30 model dir


@dataclass(frozen=True)
class LongFile:
    path: str
    seconds: float
    utterances: int
    gap_seconds: float
    source_manifest: str


@dataclass(frozen=True)
class Machine:
    cpu: str
    amx: bool
    cores_usable: int
    load_average: list[float] | None
    python: str
    system: str
    versions: dict[str, str]


def machine_now() -> Machine:
    versions = {}
    for pkg in ("kdasr", "numpy", "onnxruntime", "faster-whisper", "ctranslate2"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return Machine(cpu_model(), cpu_has_amx(), cores, load, platform.python_version(),
                   f"{platform.system()} {platform.release()}", versions)


@dataclass(frozen=True)
class H2HReport:
    """Everything `kdasr bench-whisper` measured in one run, in the order the writer shows it."""

    started: str
    command: str
    note: str
    machine: Machine
    beam: int
    manifest: str  # the short utterances
    limit: int
    long_file: LongFile | None
    model_dirs: dict[str, dict[str, str]]  # model -> {"padded": dir, "unpadded": dir, "ct2": faster-whisper's}
    imports: list[str]  # the import-whisper commands this run ran (empty: the dirs existed)
    runs: list[RunRecord]  # head-to-head rows
    padding: list[RunRecord]  # the padding comparison's rows (spec.variant names the variant)
    variants: list[PaddingVariant]
    parity: list[ParityRecord] = field(default_factory=list)
    wall_s: float = 0.0  # the whole run, imports included

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["kdasr_whisper_bench"] = REPORT_FORMAT
        for key in ("runs", "padding"):  # derived figures beside the raw ones, for readers of the JSON
            for rec, d in zip(getattr(self, key), doc[key], strict=True):
                d.update(rtfx=rec.rtfx, latency_ms_p50=rec.latency_ms(50), latency_ms_p95=rec.latency_ms(95))
        for rec, d in zip(self.parity, doc["parity"], strict=True):
            d["share"] = rec.share
        return doc
