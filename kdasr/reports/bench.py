"""`kdasr bench`: runtime speed and accuracy, side by side in one run on the same audio, measured
into a RuntimeBench record (kdasr.reports.bench_records; kdasr.reports.bench_report writes it as Markdown
and JSON) with the machine described. Torch-free: the torch-eager comparison is an
`Engine` built on the torch side (kdasr.models.reference_decode.TorchEagerEngine) and passed in.

Every decoding row has an "encoder only" row beside it (the same engine's encoder alone on the
same batches), and ORT rows break their time down by stage (encoder graph, decoder graph, the
numpy search), so it is clear which part a speed-up has to come from."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..errors import ModelError
from ..machine import cpu_has_amx, cpu_model
from ..runtime import DecodeOptions, Transcriber
from ..runtime.transcriber import Result, default_model_dir
from .bench_records import (
    BEAM5,
    GREEDY,
    ORT_FP32_B1,
    ORT_FP32_B16,
    ORT_INT8_B1,
    LongAudio,
    Measured,
    RuntimeBench,
    search_name,
)
from .engines import Engine, OrtEngine, batch_one, measure


@dataclass(frozen=True)
class BenchConfig:
    manifest: Path
    model_dir: Path | None = None
    lm_dir: Path | None = None  # exported LM/BERT (default: the model dir when it holds them)
    limit: int = 64
    threads: int = 2
    long_file: Path | None = None
    note: str = ""
    repeats: int = 1  # each timing is the best of this many runs (less noise on a shared machine)
    command: str = ""  # the exact command line, quoted in the report
    reference: str = ""  # what the reference engine was built from (checkpoint or model dir), for the report


def machine_info() -> dict:
    """The machine a benchmark ran on, machine-readable (bench_report.machine_lines prints it)."""
    model = cpu_model()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for pkg in ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "kdasr"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"cpu": model, "amx": cpu_has_amx(), "cores_usable": cores, "cpu_count": os.cpu_count(),
            "load_average": load, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "versions": versions}


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of a command, measured in a fresh wrapper process."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, p.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True).stdout
    kb, secs, rc = out.split()
    if rc != "0":
        raise ModelError(f"bench: {' '.join(cmd[:4])} ... failed (exit {rc})")
    return int(kb) / 1024, float(secs)


def _search_settings(rec_label: str, rec_opts: DecodeOptions) -> list[tuple[str, DecodeOptions, str]]:
    """(label, options, note) of the search section's settings; note: what sets the setting apart."""
    return [
        (GREEDY, DecodeOptions(), ""),
        (BEAM5, DecodeOptions(beam=5), ""),
        ("beam 5, length penalty 1.0", DecodeOptions(beam=5, length_penalty=1.0), ""),
        ("beam 5 + CTC 0.2", DecodeOptions(beam=5, ctc_weight=0.2), ""),
        (rec_label, rec_opts, ""),
        ("beam 1 + CTC 0.3", DecodeOptions(beam=1, ctc_weight=0.3), ""),
        # 100 (the largest DecodeOptions takes) is far above max_len_ratio: the CTC length limit never binds
        ("greedy, no CTC length limit", DecodeOptions(ctc_length_ratio=100.0), "length cap: frames x 0.6 only; "),
    ]


def run_bench(
    cfg: BenchConfig, reference: Engine | None = None, progress: Callable[[str], None] = lambda m: None
) -> RuntimeBench:
    """Measure; the writers (kdasr.reports.bench_report) format the record. reference: the engine ORT
    is compared against (the torch-eager one, built by the caller)."""
    model_dir = Path(cfg.model_dir or default_model_dir())
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = machine_info()
    # explicit precisions: its rows compare them, whatever the model recommends
    fp32 = Transcriber(model_dir, threads=cfg.threads, precision="fp32", lm=cfg.lm_dir, bert=cfg.lm_dir, vad=False)
    rate = fp32.sample_rate
    utts = read_manifest(cfg.manifest)[: cfg.limit]
    waves = [load_audio(u.audio, rate, start=u.start, duration=u.duration) for u in utts]
    refs = [u.text for u in utts]
    audio = sum(len(w) for w in waves) / rate
    has_int8 = all("int8" in g.files for g in fp32.model.spec.graphs.values())
    int8 = Transcriber(model_dir, threads=cfg.threads, precision="int8", vad=False) if has_int8 else None
    e32 = OrtEngine(fp32, "ORT fp32")
    e8 = OrtEngine(int8, "ORT int8") if int8 is not None else None
    greedy = DecodeOptions()
    rec_opts = fp32.recommended_options()

    def run(engine: Engine, name: str, opts: DecodeOptions, note: str = "") -> Measured:
        progress(f"{engine.name}: {name}")
        row, enc = measure(engine, name, opts, waves, refs, cfg.repeats, sample_rate=rate)
        return Measured(row, enc, note)

    engines = []
    if reference is not None:
        engines.append(run(reference, f"{reference.name}, batch 1", batch_one(greedy)))
    engines.append(run(e32, ORT_FP32_B1, batch_one(greedy)))
    if e8 is not None:
        engines.append(run(e8, ORT_INT8_B1, batch_one(greedy)))
    b16 = run(e32, ORT_FP32_B16, replace(greedy, batch_size=16))

    rec_label = f"beam {rec_opts.beam} + CTC {rec_opts.ctc_weight:g} (model.json recommends)"
    # the summary line and the encoder-vs-search ratio are about what a user runs: the recommended precision
    rec_precision = "int8" if e8 is not None and fp32.model.spec.precision_for("cpu") == "int8" else "fp32"
    settings = _search_settings(rec_label, rec_opts)
    search = [run(e32, search_name("fp32", label), o, note) for label, o, note in settings]
    if e8 is not None:
        int8_labels = (GREEDY, rec_label)
        search += [run(e8, search_name("int8", label), o, note) for label, o, note in settings if label in int8_labels]

    fusion = []
    beam5 = DecodeOptions(beam=5)
    if fp32.teacher("lm") is not None:
        fusion.append(run(e32, "beam 5 + shallow fusion (LM 0.3, bonus 0.5)",
                          replace(beam5, lm_weight=0.3, length_bonus=0.5)))
        fusion.append(run(e32, "beam 5 + LM rescoring (0.3)", replace(beam5, rescore="lm")))
    if fp32.teacher("bert") is not None:
        fusion.append(run(e32, "beam 5 + BERT PLL rescoring (0.3)", replace(beam5, rescore="bert")))

    progress("long audio and peak RSS of kdasr transcribe")
    return RuntimeBench(
        run=started, machine=info, command=cfg.command, note=cfg.note, manifest=str(cfg.manifest),
        utterances=len(utts), seconds_audio=audio, sample_rate=rate, model=str(model_dir), threads=cfg.threads,
        repeats=max(1, cfg.repeats), reference=reference.name if reference is not None else None,
        reference_source=cfg.reference, has_int8=e8 is not None, engines=tuple(engines), batch16=b16,
        search=tuple(search), recommended=search_name(rec_precision, rec_label), recommended_label=rec_label,
        fusion=tuple(fusion), long_audio=_long_audio(cfg, model_dir, waves, fp32),
    )


def _long_audio(cfg: BenchConfig, model_dir: Path, waves: list[np.ndarray], t: Transcriber) -> LongAudio:
    import soundfile as sf

    rate = t.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        path = cfg.long_file
        if path is None:  # ~3 minutes of the benchmark audio, 0.6 s pauses between utterances
            gap = np.zeros(int(0.6 * rate), np.float32)
            parts, total = [], 0
            while total < 180 * rate:
                for w in waves:
                    parts += [w, gap]
                    total += len(w) + len(gap)
            path = Path(tmp) / "long.flac"
            sf.write(path, np.concatenate(parts)[: 180 * rate], rate)
        t0 = time.perf_counter()
        res = t.transcribe([str(path)], DecodeOptions())
        secs = time.perf_counter() - t0
        r = res[0]
        if not isinstance(r, Result):
            raise ModelError(f"bench: {path}: {r.reason}")
        cmd = [sys.executable, "-m", "kdasr", "transcribe", str(path), "--model", str(model_dir)]
        rss, wall = peak_rss_mb([*cmd, "--threads", str(cfg.threads)])
        rss5, wall5 = peak_rss_mb([*cmd, "--threads", str(cfg.threads), "--beam", "5"])
    return LongAudio(r.duration, tuple(s.end for s in r.segments), secs, rss, wall, rss5, wall5)
