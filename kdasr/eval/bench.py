"""`kdasr bench`: runtime speed and accuracy, side by side in one run on the same audio, written as
a markdown report with the machine described. Torch-free except the torch-eager comparison,
which imports torch lazily (only when a checkpoint is given)."""

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
from ..runtime import DecodeOptions, Transcriber
from ..runtime.transcriber import Result, default_model_dir
from .wer import error_rates


@dataclass(frozen=True)
class BenchConfig:
    manifest: Path
    model_dir: Path | None = None
    checkpoint: Path | None = None  # adds torch eager
    lm_dir: Path | None = None  # exported LM/BERT (default: the model dir when it holds them)
    limit: int = 64
    threads: int = 2
    long_file: Path | None = None
    note: str = ""
    repeats: int = 1  # each timing is the best of this many runs (less noise on a shared machine)
    command: str = ""  # the exact command line, quoted in the report


@dataclass
class Row:
    name: str
    seconds: float  # wall time
    audio: float  # seconds of audio
    wer: float | None = None
    cer: float | None = None
    extra: str = ""

    @property
    def rtfx(self) -> float:
        return self.audio / self.seconds if self.seconds > 0 else float("inf")


def machine() -> list[str]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for pkg in ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "kdasr"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"- CPU: {model}; {cores} cores usable (os.cpu_count {os.cpu_count()}); load average at start {load}",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}; " + ", ".join(versions),
    ]


REPEATS = [1]


def _timed(fn: Callable[[], list]) -> tuple[float, list]:
    best, out = float("inf"), []
    for _ in range(REPEATS[0]):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _score(name: str, seconds: float, audio: float, refs: list[str], hyps: list[str], extra: str = "") -> Row:
    r = error_rates(refs, hyps)
    return Row(name, seconds, audio, r.wer, r.cer, extra)


def _ort_rows(t: Transcriber, waves, refs, audio, opts_list, one_by_one=False) -> list[Row]:
    rows = []
    for name, opts in opts_list:
        t.transcribe(waves[:2], opts)  # warm-up (session allocations, teacher loading)
        if one_by_one:
            secs, res = _timed(lambda o=opts: [t.transcribe([w], o)[0] for w in waves])
        else:
            secs, res = _timed(lambda o=opts: t.transcribe(waves, o))
        rows.append(_score(name, secs, audio, refs, [r.text for r in res]))
    return rows


def _torch_eager(ckpt: Path, waves, refs, audio, threads: int, info: dict) -> Row:
    import torch  # the only torch import of the bench, by design

    from ..export.pipeline import load_student
    from ..models.reference_decode import torch_greedy
    from ..text import Tokenizer

    torch.set_num_threads(threads)
    model, payload = load_student([ckpt])
    tok = Tokenizer.from_bytes(payload["tokenizer_model"])
    ids = info["special_ids"]

    def run() -> list[str]:
        return [
            tok.decode(torch_greedy(model, torch.from_numpy(w), ids["bos"], ids["eos"], ids["blank"])) for w in waves
        ]

    torch_greedy(model, torch.from_numpy(waves[0]), ids["bos"], ids["eos"], ids["blank"])  # warm-up
    secs, hyps = _timed(run)
    return _score("torch eager fp32, batch 1", secs, audio, refs, hyps)


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
    head = "| setting | wall s | RTFx | speed-up | WER % | CER % | |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        up = f"{base.seconds / r.seconds:.2f}x" if base else ""
        wer = f"{r.wer:.2f}" if r.wer is not None else ""
        cer = f"{r.cer:.2f}" if r.cer is not None else ""
        lines.append(f"| {r.name} | {r.seconds:.2f} | {r.rtfx:.1f} | {up} | {wer} | {cer} | {r.extra} |")
    return lines


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda m: None) -> str:
    model_dir = Path(cfg.model_dir or default_model_dir())
    REPEATS[0] = max(1, cfg.repeats)
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
        f"onnxruntime intra-op threads: {cfg.threads}. Times: best of {REPEATS[0]}. "
        "Every row decodes the same audio in this one run; "
        "RTFx = seconds of audio per second of wall time, end to end (encoder + search + detokenise; "
        "audio already in memory).",
        "",
    ]
    fp32 = Transcriber(model_dir, threads=cfg.threads, lm=cfg.lm_dir, bert=cfg.lm_dir)
    has_int8 = all("int8" in fp32.model.info["graphs"][g] for g in ("encoder", "decoder"))
    int8 = Transcriber(model_dir, threads=cfg.threads, precision="int8") if has_int8 else None
    greedy = DecodeOptions()

    progress("engines: torch eager / ORT fp32 / ORT int8 (greedy, batch 1)")
    engines = []
    if cfg.checkpoint is not None:
        engines.append(_torch_eager(cfg.checkpoint, waves, refs, audio, cfg.threads, fp32.model.info))
    engines += _ort_rows(fp32, waves, refs, audio, [("ORT fp32, batch 1", greedy)], one_by_one=True)
    if int8 is not None:
        engines += _ort_rows(int8, waves, refs, audio, [("ORT int8, batch 1", greedy)], one_by_one=True)
    lines += ["## Engines: torch eager vs ORT fp32 vs ORT int8 (greedy, one utterance at a time)", ""]
    lines += _table(engines, engines[0]) + [""]
    if int8 is None:
        lines += ["(no int8 graphs in the model dir: export with `--quantize int8`)", ""]

    progress("batching: batch 1 vs 16")
    b16 = _ort_rows(fp32, waves, refs, audio, [("ORT fp32, batch 16", replace(greedy, batch_size=16))])
    lines += ["## Batch 1 vs batch 16 (ORT fp32, greedy)", ""]
    base = next(r for r in engines if r.name.startswith("ORT fp32"))
    lines += _table([base, *b16], base) + [""]

    progress("search: greedy vs beam 5")
    search = [
        ("greedy (beam 1)", greedy),
        ("beam 5", DecodeOptions(beam=5)),
        ("beam 5, length penalty 1.0", DecodeOptions(beam=5, length_penalty=1.0)),
        ("beam 5 + CTC prefix 0.3", DecodeOptions(beam=5, ctc_weight=0.3)),
        ("beam 1 + CTC prefix 0.3", DecodeOptions(beam=1, ctc_weight=0.3)),
        ("greedy, no CTC length limit", DecodeOptions(ctc_length_ratio=1e9)),
        ("beam 5, no CTC length limit", DecodeOptions(beam=5, ctc_length_ratio=1e9)),
    ]
    rows = _ort_rows(fp32, waves, refs, audio, [(f"fp32 {n}", o) for n, o in search])
    if int8 is not None:
        rows += _ort_rows(int8, waves, refs, audio, [(f"int8 {n}", o) for n, o in search[:2]])
    for r in rows:
        r.extra = "length cap: frames x 0.6 only" if "no CTC length limit" in r.name else r.extra
    lines += ["## Search: RTFx at beam 1 and 5, joint CTC/attention (ORT, batch 16)", ""]
    lines += _table(rows, rows[0]) + [""]

    lm_rows = []
    beam5 = DecodeOptions(beam=5)
    if fp32.teacher("lm") is not None:
        lm_rows += [("beam 5 + shallow fusion (LM 0.3, bonus 0.5)", replace(beam5, lm_weight=0.3, length_bonus=0.5))]
        lm_rows += [("beam 5 + LM rescoring (0.3)", replace(beam5, rescore="lm"))]
    if fp32.teacher("bert") is not None:
        lm_rows += [("beam 5 + BERT PLL rescoring (0.3)", replace(beam5, rescore="bert"))]
    lines += ["## Shallow fusion and rescoring cost against plain beam search (ORT fp32, batch 16)", ""]
    if lm_rows:
        progress("fusion and rescoring")
        fused = _ort_rows(fp32, waves, refs, audio, [("beam 5", beam5), *lm_rows])
        lines += _table(fused, fused[0]) + [""]
    else:
        lines += ["(no exported LM/BERT: `kdasr export-lm --lm DIR --bert DIR --out MODEL_DIR`)", ""]

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
        secs, res = _timed(lambda: t.transcribe([str(path)], DecodeOptions()))
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
