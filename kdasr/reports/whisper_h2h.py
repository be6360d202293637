"""`kdasr bench-whisper`: kdasr running whisper against faster-whisper on the same weights and audio
(issue 29 items 2-4). Measures only: returns an H2HReport of typed records (whisper_h2h_records);
whisper_h2h_writer.py turns it into Markdown and JSON.

Per model (tiny.en, base): kdasr fp32, kdasr int8 and faster-whisper int8, at each thread count
and batch size, on short utterances (the first `limit` of a manifest) and on one long file (test
utterances laid end to end with a short silence between them, written once under the work dir);
every row in its own process (whisper_h2h_worker.py), so its peak RSS is its own. Parity: each
kdasr row's normalised 1-best against faster-whisper's row with the same threads and batch. The
padding comparison: kdasr fp32 with the encoder padded to 30 s (the default import) and without
(--no-pad-30 --tail 2), with faster-whisper int8 and float32 beside them, on each padding manifest
(float32: the same arithmetic as kdasr fp32, for parity). Model dirs
missing under the work dir are imported first with `kdasr import-whisper` (needs torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..errors import KdasrError
from ..eval.run import reference
from ..io_utils import atomic_open, atomic_write_text
from ..whisper_reference import REFERENCE_MODELS, whisper_model_dir
from .whisper_h2h_records import (
    FW_FP32,
    FW_INT8,
    KDASR_FP32,
    LONG,
    SHORT,
    SYSTEMS,
    H2HReport,
    LongFile,
    Measured,
    PaddingVariant,
    RunRecord,
    RunSpec,
    build_run,
    machine_now,
    parity,
)

RATE = 16000
UNPADDED_TAIL = 2.0  # seconds of zero log-mel after the input in the unpadded dir (import-whisper's default)
VARIANTS = (
    PaddingVariant("padded to 30 s (default)", "log-mel padded with zeros to 3000 frames inside the encoder graph, "
                   "as faster-whisper pads (`kdasr import-whisper M`)", False),
    PaddingVariant("unpadded", f"the input's log-mel and {UNPADDED_TAIL:g} s of zero log-mel only "
                   f"(`kdasr import-whisper M --no-pad-30 --tail {UNPADDED_TAIL:g}`)", True),
)
FW_VARIANT = "faster-whisper int8 (pads to 30 s)"
FW_FP32_VARIANT = "faster-whisper float32 (pads to 30 s)"  # the same arithmetic as kdasr fp32: parity


@dataclass(frozen=True)
class H2HConfig:
    manifest: Path  # short utterances
    models: tuple[str, ...] = REFERENCE_MODELS
    limit: int = 48
    long_seconds: float = 600.0  # 0: no long file
    long_from: Path | None = None  # the long file's utterances (default: manifest)
    gap_seconds: float = 0.5
    long_threads: tuple[int, ...] = ()  # the long file's thread counts (default: threads)
    long_batches: tuple[int, ...] = ()  # and batch sizes (default: batches)
    merge_gap_s: float = 1.0  # kdasr on the long file: VAD regions closer than this make one piece ...
    max_segment_s: float = 30.0  # ... of at most this long (whisper's window; the runtime's default is 20 s)
    threads: tuple[int, ...] = ()  # default: 1 and all usable cores
    batches: tuple[int, ...] = (1, 16)
    beam: int = 5
    pad_manifests: tuple[Path, ...] = ()
    pad_limit: int = 100
    work: Path = Path("exp/whisper-bench")
    command: str = ""
    note: str = ""


def all_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def model_dirs(model: str, work: Path, unpadded_too: bool = True) -> tuple[dict[str, str], list[str]]:
    """{"padded", "unpadded", "ct2"} for `model`, importing the kdasr dirs that are missing (the
    unpadded one only when `unpadded_too`: the padding comparison)."""
    if model not in REFERENCE_MODELS:
        raise KdasrError(f"unknown whisper model {model!r}: choose from {', '.join(REFERENCE_MODELS)}")
    padded, unpadded = work / model, work / f"{model}-unpadded"
    wanted = {padded: ["--quantize", "int8"]}
    if unpadded_too:
        wanted[unpadded] = ["--no-pad-30", "--tail", f"{UNPADDED_TAIL:g}"]
    ran = []
    for out, extra in wanted.items():
        if (out / "model.json").is_file():
            continue
        cmd = [sys.executable, "-m", "kdasr", "import-whisper", model, "--out", str(out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KdasrError(f"kdasr import-whisper {model} --out {out} failed: {proc.stderr.strip()[-300:]}")
        ran.append("kdasr import-whisper " + " ".join(cmd[4:]))
    if not any("int8" in f.name for f in padded.glob("*.onnx")):
        raise KdasrError(f"{padded}: no int8 graphs (import it with --quantize int8)")
    return {"padded": str(padded), "unpadded": str(unpadded), "ct2": str(whisper_model_dir(model))}, ran


def build_long_file(source: Path, seconds: float, gap: float, work: Path) -> LongFile:
    """Scorable utterances of `source` in manifest order, `gap` s of silence between them, until
    `seconds` are reached (whole utterances only); written once (a .flac and a .json beside it
    with the ids and the joined reference), reused while the same ask is made."""
    import soundfile as sf

    path = work / f"long-{source.stem}-{seconds:g}s.flac"
    meta_path = path.with_suffix(".json")
    ask = {"source": str(source), "seconds": seconds, "gap": gap}
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("ask") == ask:
            return LongFile(str(path), meta["seconds"], len(meta["ids"]), gap, str(source))
    silence = np.zeros(int(gap * RATE), np.float32)
    parts, ids, refs, total = [], [], [], 0
    for u in read_manifest(source):
        if total >= seconds * RATE:
            break
        ref = reference(u)[0]
        if ref is None:  # digits in the reference: not scorable
            continue
        w = load_audio(u.audio, start=u.start, duration=u.duration)
        parts += [w, silence]
        ids.append(u.id)
        refs.append(ref)
        total += len(w) + len(silence)
    if total < seconds * RATE:
        raise KdasrError(f"{source}: {total / RATE:.0f} s of scorable utterances, fewer than the {seconds:g} s asked")
    wave = np.concatenate(parts[:-1])
    with atomic_open(path, "wb") as f:
        sf.write(f, wave, RATE, format="FLAC")
    meta = {"ask": ask, "seconds": len(wave) / RATE, "ids": ids, "reference": " ".join(refs)}
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
    return LongFile(str(path), len(wave) / RATE, len(ids), gap, str(source))


def run_worker(spec: RunSpec) -> Measured:
    """The row in a fresh process (OMP_NUM_THREADS = its threads); its Measured back."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec.threads)}
    proc = subprocess.run([sys.executable, "-m", "kdasr.reports.whisper_h2h_worker", spec.to_json()],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
        raise KdasrError(f"bench-whisper: {spec.system} ({spec.model}, {spec.audio}) failed: {tail[0]}")
    return Measured(**json.loads(proc.stdout.strip().splitlines()[-1]))


def short_refs(manifest: Path, limit: int) -> list[str | None]:
    return [reference(u)[0] for u in read_manifest(manifest)[: limit or None]]


def run_h2h(cfg: H2HConfig, progress: Callable[[str], None] = lambda m: None,
            measure: Callable[[RunSpec], Measured] = run_worker) -> H2HReport:
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = machine_now()  # before the work: the load average it started under
    threads = cfg.threads or tuple(sorted({1, all_threads()}))
    if not read_manifest(cfg.manifest):
        raise KdasrError(f"{cfg.manifest}: no utterances")
    cfg.work.mkdir(parents=True, exist_ok=True)
    dirs, imports = {}, []
    for m in cfg.models:
        progress(f"model dirs for {m}")
        dirs[m], ran = model_dirs(m, cfg.work, bool(cfg.pad_manifests))
        imports += ran
    long = None
    if cfg.long_seconds > 0:
        progress("long file")
        long = build_long_file(cfg.long_from or cfg.manifest, cfg.long_seconds, cfg.gap_seconds, cfg.work)
    refs = {SHORT: short_refs(cfg.manifest, cfg.limit)}
    if long is not None:
        refs[LONG] = [json.loads(Path(long.path).with_suffix(".json").read_text())["reference"]]

    def row(spec: RunSpec, rs: list[str | None]) -> RunRecord:
        progress(f"{spec.model}: {spec.variant or spec.audio}, {spec.system}, {spec.threads} thread(s), "
                 f"batch {spec.batch}")
        return build_run(spec, measure(spec), rs)

    def where(m: str, system: str) -> str:
        return dirs[m]["ct2"] if system == FW_INT8 else dirs[m]["padded"]

    runs = []
    audios = [SHORT] + ([LONG] if long is not None else [])
    grid = {SHORT: (threads, cfg.batches), LONG: (cfg.long_threads or threads, cfg.long_batches or cfg.batches)}
    for m in cfg.models:
        for audio in audios:
            for n in grid[audio][0]:
                for b in grid[audio][1]:
                    for system in SYSTEMS:  # side by side: a change in load falls on all three alike
                        spec = RunSpec(m, system, where(m, system), n, b, audio, cfg.beam,
                                       str(cfg.manifest) if audio == SHORT else "",
                                       cfg.limit if audio == SHORT else 0, long.path if audio == LONG else "",
                                       merge_gap_s=cfg.merge_gap_s, max_segment_s=cfg.max_segment_s)
                        runs.append(row(spec, refs[audio]))
    padding = []
    n, b = max(threads), max(cfg.batches)
    for m in cfg.models:
        for manifest in cfg.pad_manifests:
            rs = short_refs(manifest, cfg.pad_limit)
            for v in VARIANTS:
                d = dirs[m]["unpadded" if v.unpadded_dir else "padded"]
                padding.append(row(RunSpec(m, KDASR_FP32, d, n, b, SHORT, cfg.beam, str(manifest), cfg.pad_limit,
                                           variant=v.name), rs))
            for system, name in ((FW_INT8, FW_VARIANT), (FW_FP32, FW_FP32_VARIANT)):
                padding.append(row(RunSpec(m, system, dirs[m]["ct2"], n, b, SHORT, cfg.beam, str(manifest),
                                           cfg.pad_limit, variant=name), rs))
    return H2HReport(started, cfg.command, cfg.note, machine, cfg.beam, str(cfg.manifest), cfg.limit, long, dirs,
                     imports, runs, padding, list(VARIANTS), parity(runs) + parity(padding),
                     time.perf_counter() - t0)
