"""`kdasr bench`: runtime speed and accuracy, side by side in one run on the same audio, written as
a markdown report with the machine described. Torch-free: the torch-eager comparison is an
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
from .engines import Engine, OrtEngine, Row, batch_one, measure


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
    """The machine a benchmark ran on, machine-readable (also what `machine()` prints)."""
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


def machine() -> list[str]:
    m = machine_info()
    load = ", ".join(f"{x:.2f}" for x in m["load_average"]) if m["load_average"] else "n/a"
    return [
        f"- CPU: {m['cpu']}{' (AMX)' if m['amx'] else ''}; {m['cores_usable']} cores usable "
        f"(os.cpu_count {m['cpu_count']}); "
        f"load average at start {load}",
        f"- Python {m['python']} on {m['system']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
    ]


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


def _table(rows: list[Row], base: Row | None = None) -> list[str]:
    head = "| setting | wall s | CPU s | RTFx | speed-up wall / CPU | WER % | CER % | notes |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        up = f"{base.seconds / r.seconds:.2f}x / {base.cpu / r.cpu:.2f}x" if base and r.wer is not None else ""
        wer = f"{r.wer:.2f}" if r.wer is not None else ""
        cer = f"{r.cer:.2f}" if r.cer is not None else ""
        lines.append(f"| {r.name} | {r.seconds:.2f} | {r.cpu:.2f} | {r.rtfx:.1f} | {up} | {wer} | {cer} | {r.extra} |")
    return lines


@dataclass(frozen=True)
class Aim:
    what: str
    fast: Row
    slow: Row
    goal: float  # fast is at least this many times faster than slow
    note: str = ""

    def line(self) -> str:
        wall, cpu = self.slow.seconds / self.fast.seconds, self.slow.cpu / max(self.fast.cpu, 1e-9)
        met = "met" if cpu >= self.goal else "missed"  # judged by CPU time: the work, not the waiting
        return f"| {self.what} | {wall:.2f}x | {cpu:.2f}x | >= {self.goal:g}x | {met} | {self.note} |"


def _aims(aims: list[Aim]) -> list[str]:
    lines = ["| ratio | wall | CPU | aim | (by CPU) | notes |", "|---|---:|---:|---:|---|---|"]
    return lines + [a.line() for a in aims]


def run_bench(
    cfg: BenchConfig, reference: Engine | None = None, progress: Callable[[str], None] = lambda m: None
) -> str:
    """reference: the engine ORT is compared against (the torch-eager one, built by the caller)."""
    model_dir = Path(cfg.model_dir or default_model_dir())
    utts = read_manifest(cfg.manifest)[: cfg.limit]
    waves = [load_audio(u.audio) for u in utts]
    refs = [u.text for u in utts]
    audio = sum(len(w) for w in waves) / 16000
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# Runtime benchmark (`kdasr bench`)", "", f"Run {started}. Machine:", *machine(), ""]
    if cfg.command:
        lines += [f"Command: `{cfg.command}`", ""]
    if cfg.note:
        lines += [f"**Note:** {cfg.note}", ""]
    lines += [
        f"Audio: first {len(utts)} utterances of `{cfg.manifest}` ({audio:.1f} s). Model: `{model_dir}`. "
        f"onnxruntime intra-op threads: {cfg.threads}. Times: best of {max(1, cfg.repeats)}. "
        "Every row decodes the same audio in this one run; "
        "RTFx = seconds of audio per second of wall time, end to end (encoder + search + detokenise; "
        "audio already in memory). CPU s = this process's CPU time for the row (with 1 thread, the work "
        "itself; wall time also counts waiting for a core); of several runs the one with the least CPU "
        "time is kept. Each decoding row is followed by its engine's encoder alone on the same batches; "
        "ORT rows split their CPU time by stage: encoder graph, decoder graph (all step calls), and the "
        "rest (numpy search: candidate ranking, CTC prefix scores, state gathers; detokenising).",
        "",
    ]
    if reference is not None and cfg.reference:
        lines += [f"Reference engine `{reference.name}` built from `{cfg.reference}`.", ""]
    fp32 = Transcriber(model_dir, threads=cfg.threads, lm=cfg.lm_dir, bert=cfg.lm_dir, vad=False)  # as kdasr eval
    has_int8 = all("int8" in g.files for g in fp32.model.spec.graphs.values())
    int8 = Transcriber(model_dir, threads=cfg.threads, precision="int8", vad=False) if has_int8 else None
    e32 = OrtEngine(fp32, "ORT fp32")
    e8 = OrtEngine(int8, "ORT int8") if int8 is not None else None
    greedy = DecodeOptions()
    rec_opts = fp32.recommended_options()

    def run(engine: Engine, name: str, opts: DecodeOptions) -> list[Row]:
        progress(f"{engine.name}: {name}")
        return list(measure(engine, name, opts, waves, refs, cfg.repeats))

    engines = []
    if reference is not None:
        engines += run(reference, f"{reference.name}, batch 1", batch_one(greedy))
    engines += run(e32, "ORT fp32, batch 1", batch_one(greedy))
    if e8 is not None:
        engines += run(e8, "ORT int8, batch 1", batch_one(greedy))
    lines += ["## Engines: torch eager vs ORT fp32 vs ORT int8 (greedy, one utterance at a time)", ""]
    lines += _table(engines, engines[0]) + [""]
    if int8 is None:
        lines += ["(no int8 graphs in the model dir: export with `--quantize int8`)", ""]
    ort1 = next(r for r in engines if r.name == "ORT fp32, batch 1")

    b16 = run(e32, "ORT fp32, batch 16", replace(greedy, batch_size=16))
    lines += ["## Batch 1 vs batch 16 (ORT fp32, greedy)", ""]
    lines += _table([*engines[engines.index(ort1) : engines.index(ort1) + 2], *b16], ort1) + [""]

    rec_name = f"beam {rec_opts.beam} + CTC {rec_opts.ctc_weight:g} (model.json recommends)"
    search = [
        ("greedy (beam 1)", greedy),
        ("beam 5", DecodeOptions(beam=5)),
        ("beam 5, length penalty 1.0", DecodeOptions(beam=5, length_penalty=1.0)),
        ("beam 5 + CTC 0.2", DecodeOptions(beam=5, ctc_weight=0.2)),
        (rec_name, rec_opts),
        ("beam 1 + CTC 0.3", DecodeOptions(beam=1, ctc_weight=0.3)),
        # 100 (the largest DecodeOptions takes) is far above max_len_ratio: the CTC length limit never binds
        ("greedy, no CTC length limit", DecodeOptions(ctc_length_ratio=100.0)),
    ]
    rows = []
    for n, o in search:
        rows += run(e32, f"fp32 {n}", o)
    if e8 is not None:
        for n, o in (search[0], search[4]):
            rows += run(e8, f"int8 {n}", o)
    for r in rows:
        r.extra = ("length cap: frames x 0.6 only; " if "no CTC length limit" in r.name else "") + r.extra
    lines += ["## Search: greedy, beam, joint CTC/attention (ORT, batch 16)", ""]
    lines += _table(rows, rows[0]) + [""]
    rec = next(r for r in rows if r.name == f"fp32 {rec_name}")
    rec_enc = rows[rows.index(rec) + 1]
    enc_s = rec.stages.get("encoder graph", 0.0)
    search_s = rec.cpu - enc_s
    lines += [
        f"Recommended decoding ({rec_name}): RTFx {rec.rtfx:.1f} (wall; {audio / rec.cpu:.1f} by CPU time) with "
        f"{cfg.threads} onnxruntime thread(s); search (everything but the encoder graph) {search_s:.2f} CPU s "
        f"against the encoder's {enc_s:.2f} in the same run ({rec_enc.cpu:.2f} alone): "
        f"{search_s / max(enc_s, 1e-9):.2f}x the encoder.",
        "",
    ]

    lm_rows = []
    beam5 = DecodeOptions(beam=5)
    if fp32.teacher("lm") is not None:
        lm_rows += [("beam 5 + shallow fusion (LM 0.3, bonus 0.5)", replace(beam5, lm_weight=0.3, length_bonus=0.5))]
        lm_rows += [("beam 5 + LM rescoring (0.3)", replace(beam5, rescore="lm"))]
    if fp32.teacher("bert") is not None:
        lm_rows += [("beam 5 + BERT PLL rescoring (0.3)", replace(beam5, rescore="bert"))]
    lines += ["## Shallow fusion and rescoring cost against plain beam search (ORT fp32, batch 16)", ""]
    if lm_rows:
        fused = rows[2:4]  # beam 5 and its encoder-only row, from this run
        for n, o in lm_rows:
            fused += run(e32, n, o)
        lines += _table(fused, fused[0]) + [""]
    else:
        lines += ["(no exported LM/BERT: `kdasr export-lm --lm DIR --bert DIR --out MODEL_DIR`)", ""]

    aims = []
    if reference is not None:
        aims.append(Aim("ORT fp32 vs torch eager (greedy, batch 1, end to end)", ort1, engines[0], 2.5))
    if e8 is not None:
        i8 = next(r for r in engines if r.name == "ORT int8, batch 1")
        loss = (i8.cer or 0.0) - (ort1.cer or 0.0)
        aims.append(Aim("ORT int8 vs fp32 (greedy, batch 1)", i8, ort1, 1.5, f"CER change {loss:+.2f} (aim <= +0.5)"))
    aims.append(Aim("batch 16 vs batch 1 (ORT fp32, greedy)", b16[0], ort1, 2.0))
    aims.append(
        Aim(
            f"encoder vs search, {rec_name}",
            Row("search", search_s, audio, cpu=search_s),
            Row("encoder", enc_s, audio, cpu=enc_s),
            1.0,
            f"search costs at most the encoder (CPU s); RTFx {rec.rtfx:.1f} wall, {audio / rec.cpu:.1f} by CPU "
            "(aim >= 250 per thread)",
        )
    )
    lines += ["## Ratios side by side (this run)", "", *_aims(aims), ""]

    progress("long audio and peak RSS of kdasr transcribe")
    lines += _long_audio(cfg, model_dir, waves, fp32)
    return "\n".join(lines) + "\n"


def _long_audio(cfg: BenchConfig, model_dir: Path, waves: list[np.ndarray], t: Transcriber) -> list[str]:
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = cfg.long_file
        if path is None:  # ~3 minutes of the benchmark audio, 0.6 s pauses between utterances
            gap = np.zeros(int(0.6 * 16000), np.float32)
            parts, total = [], 0
            while total < 180 * 16000:
                for w in waves:
                    parts += [w, gap]
                    total += len(w) + len(gap)
            path = Path(tmp) / "long.flac"
            sf.write(path, np.concatenate(parts)[: 180 * 16000], 16000)
        t0 = time.perf_counter()
        res = t.transcribe([str(path)], DecodeOptions())
        secs = time.perf_counter() - t0
        r: Result = res[0]
        cmd = [sys.executable, "-m", "kdasr", "transcribe", str(path), "--model", str(model_dir)]
        rss, wall = peak_rss_mb([*cmd, "--threads", str(cfg.threads)])
        rss5, wall5 = peak_rss_mb([*cmd, "--threads", str(cfg.threads), "--beam", "5"])
    return [
        "## Long audio and memory",
        "",
        f"- {r.duration:.1f} s file -> {len(r.segments)} segments (max 20 s, cut at pauses), greedy: "
        f"{secs:.2f} s, RTFx {r.duration / secs:.1f}; segment ends "
        + ", ".join(f"{s.end:.1f}" for s in r.segments[:12])
        + (" ..." if len(r.segments) > 12 else ""),
        f"- peak RSS of `kdasr transcribe` on that file (whole process: Python, ORT, model): "
        f"greedy {rss:.0f} MB ({wall:.1f} s wall incl. start-up), beam 5 {rss5:.0f} MB ({wall5:.1f} s)",
        "",
    ]
