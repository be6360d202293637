"""`kdasr bench --system NAME=MODEL_DIR[:OPTIONS.json] ...`: the decoding cost of several systems
side by side in one run on the same audio, measured into a SystemsBench record, written as
Markdown (`systems_markdown`) and as JSON beside it (`SystemsBench.to_json`: what `kdasr
paper-table` and `kdasr card` read). Torch-free.

Each system is a model dir decoded with its recommended decoding, or with an options file from
`kdasr tune` (fusion, rescoring: the file names its LM dir), at the precision the dir recommends
for the CPU (as kdasr eval; recorded per system). Per system, two modes on the same
utterances: batch 1 (each utterance alone: its latency is its own call's wall time) and batch 16
(utterances in manifest order, 16 per call: each utterance's latency is its batch's wall time, as
a caller waiting for the batch sees it). Systems are interleaved round by round (`repeats`), so a
change in the machine's load falls on all of them alike; of the rounds, each utterance (batch)
keeps its fastest time. RTFx = seconds of audio / summed wall seconds of the calls."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..errors import KdasrError
from ..eval.run import reference
from ..eval.tune import read_options
from ..eval.wer import error_rates
from ..runtime import DecodeOptions, Transcriber
from ..runtime.transcriber import Result
from .bench import machine_info
from .bench_report import machine_lines

BENCH_FORMAT = 1
BATCHES = (1, 16)


@dataclass(frozen=True)
class SystemSpec:
    name: str
    model_dir: Path
    options_file: Path | None = None


def parse_system(text: str) -> SystemSpec:
    """'NAME=MODEL_DIR' or 'NAME=MODEL_DIR:OPTIONS.json'."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise KdasrError(f"--system {text!r}: expected NAME=MODEL_DIR[:OPTIONS.json]")
    model, colon, options = rest.rpartition(":")
    if colon and options.endswith(".json") and model:
        return SystemSpec(name.strip(), Path(model), Path(options))
    return SystemSpec(name.strip(), Path(rest))


@dataclass(frozen=True)
class SystemsBenchConfig:
    manifest: Path
    systems: tuple[SystemSpec, ...]
    limit: int = 64
    threads: int = 1
    repeats: int = 1
    command: str = ""
    note: str = ""


@dataclass
class _Loaded:
    spec: SystemSpec
    t: Transcriber
    opts: DecodeOptions
    lm: Path | None
    b1: list[float] | None = None  # per utterance, best over rounds
    b16: list[float] | None = None  # per batch of 16, best over rounds
    cpu: dict | None = None
    hyps: list[str] | None = None


def _load(spec: SystemSpec, threads: int) -> _Loaded:
    if not spec.model_dir.is_dir():
        raise KdasrError(f"--system {spec.name}: {spec.model_dir}: no such model dir")
    decoding, lm = {}, None
    if spec.options_file is not None:
        doc = read_options(spec.options_file)
        decoding, lm = doc.decoding, doc.lm
    t = Transcriber(spec.model_dir, threads=threads, lm=lm, bert=lm, vad=False)  # as kdasr eval
    try:
        opts = t.recommended_options(**decoding)
    except ValueError as e:
        raise KdasrError(f"--system {spec.name}: {e}") from None
    return _Loaded(spec, t, opts, lm)


def _texts(results) -> list[str]:
    out = []
    for r in results:
        if not isinstance(r, Result):
            raise KdasrError(f"{r.source}: {r.reason}")
        out.append(r.text)
    return out


def _timed(fn) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def _round(s: _Loaded, waves: list[np.ndarray]) -> None:
    """One round of both modes; keep each item's fastest time."""
    b1, cpu1, hyps = [], 0.0, []
    o1 = replace(s.opts, batch_size=1)
    for w in waves:
        wall, cpu, res = _timed(lambda w=w: s.t.transcribe([w], o1))
        b1.append(wall)
        cpu1 += cpu
        hyps += _texts(res)
    b16, cpu16 = [], 0.0
    o16 = replace(s.opts, batch_size=16)
    for i in range(0, len(waves), 16):
        wall, cpu, res = _timed(lambda i=i: s.t.transcribe(waves[i : i + 16], o16))
        _texts(res)
        b16.append(wall)
        cpu16 += cpu
    s.b1 = b1 if s.b1 is None else list(np.minimum(s.b1, b1))
    s.b16 = b16 if s.b16 is None else list(np.minimum(s.b16, b16))
    cpu = {"batch1": cpu1, "batch16": cpu16}
    s.cpu = cpu if s.cpu is None else {k: min(v, cpu[k]) for k, v in s.cpu.items()}
    s.hyps = s.hyps or hyps


@dataclass(frozen=True)
class ModeStats:
    """One mode (batch 1 or 16) of one system: RTFx and summed wall/CPU seconds of the calls,
    latency per utterance (at batch 16: its batch's wall time)."""

    rtfx: float | None
    wall_s: float
    cpu_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_mean: float


@dataclass(frozen=True)
class SystemRecord:
    name: str
    model: str
    options_file: str | None
    lm: str | None
    decoding: dict  # the DecodeOptions it was benched with, as a dict
    batch1: ModeStats
    batch16: ModeStats
    wer: float | None  # None: no scorable reference
    cer: float | None
    precision: str = "fp32"  # the graphs that ran (the dir's recommendation); records before it: fp32


@dataclass(frozen=True)
class SystemsBench:
    run: str
    command: str
    note: str
    machine: dict  # machine_info()
    manifest: str
    utterances: int
    seconds_audio: float
    threads: int
    repeats: int
    systems: tuple[SystemRecord, ...]
    baseline: str  # the system the latency ratios are taken against (the first --system)
    method: str

    def system(self, name: str) -> SystemRecord:
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"no system {name!r} in this bench run")

    def to_json(self) -> dict:
        """The JSON `kdasr paper-table` and `kdasr card` read (format BENCH_FORMAT)."""
        return {
            "kdasr_bench": BENCH_FORMAT, "run": self.run, "command": self.command, "note": self.note,
            "machine": self.machine, "machine_lines": machine_lines(self.machine), "manifest": self.manifest,
            "utterances": self.utterances, "seconds_audio": self.seconds_audio, "threads": self.threads,
            "repeats": self.repeats, "systems": [dataclasses.asdict(s) for s in self.systems],
            "baseline": self.baseline, "method": self.method,
        }


def _mode(per_utt: list[float], calls: list[float], audio: float, cpu: float) -> ModeStats:
    """Latencies per utterance (at batch 16: its batch's wall time); RTFx from the calls' wall time,
    each call counted once (summing the per-utterance latencies would count a batch 16 times)."""
    ms = 1000 * np.asarray(per_utt)
    wall = float(sum(calls))
    return ModeStats(audio / wall if wall > 0 else None, wall, cpu, float(np.percentile(ms, 50)),
                     float(np.percentile(ms, 95)), float(ms.mean()))


def run_systems_bench(cfg: SystemsBenchConfig, progress: Callable[[str], None] = lambda m: None) -> SystemsBench:
    if not cfg.systems:
        raise KdasrError("no --system given")
    names = [s.name for s in cfg.systems]
    if len(set(names)) != len(names):
        raise KdasrError(f"--system names repeat: {', '.join(names)}")
    utts = read_manifest(cfg.manifest)[: cfg.limit]
    if not utts:
        raise KdasrError(f"{cfg.manifest}: no utterances")
    info, started = machine_info(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loaded = [_load(s, cfg.threads) for s in cfg.systems]
    waves_at = {  # the audio at each system's own sample rate (its model's)
        rate: [load_audio(u.audio, rate, start=u.start, duration=u.duration) for u in utts]
        for rate in dict.fromkeys(s.t.sample_rate for s in loaded)
    }
    rate, first = next(iter(waves_at.items()))
    audio = sum(len(w) for w in first) / rate
    for s in loaded:  # warm-up: session allocations, teachers loaded on first use
        s.t.transcribe(waves_at[s.t.sample_rate][:2], s.opts)
    for r in range(max(1, cfg.repeats)):
        for s in loaded:
            progress(f"round {r + 1}/{max(1, cfg.repeats)}: {s.spec.name}")
            _round(s, waves_at[s.t.sample_rate])
    refs = [reference(u)[0] for u in utts]  # normalised like kdasr eval; None: not scorable (digits)
    scored = [i for i, r in enumerate(refs) if r is not None]
    systems = []
    for s in loaded:
        rates = error_rates([refs[i] for i in scored], [s.hyps[i] for i in scored]) if scored else None
        per_batch16 = [s.b16[i // 16] for i in range(len(utts))]  # each utterance waits for its batch
        systems.append(SystemRecord(
            name=s.spec.name, model=str(s.spec.model_dir),
            options_file=str(s.spec.options_file) if s.spec.options_file else None,
            lm=str(s.lm) if s.lm else None, decoding=dataclasses.asdict(s.opts),
            batch1=_mode(s.b1, s.b1, audio, s.cpu["batch1"]),
            batch16=_mode(per_batch16, s.b16, audio, s.cpu["batch16"]),
            wer=rates.wer if rates else None, cer=rates.cer if rates else None, precision=s.t.model.precision,
        ))
    return SystemsBench(
        run=started, command=cfg.command, note=cfg.note, machine=info, manifest=str(cfg.manifest),
        utterances=len(utts), seconds_audio=audio, threads=cfg.threads, repeats=max(1, cfg.repeats),
        systems=tuple(systems), baseline=cfg.systems[0].name,
        method=("batch 1: each utterance alone, latency = its call's wall time; batch 16: manifest order, "
                "16 per call, latency = its batch's wall time; systems interleaved per round, fastest of "
                "the rounds kept per utterance (batch); RTFx = audio seconds / summed call wall seconds"),
    )


def _num(x, digits=1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def systems_markdown(b: SystemsBench) -> str:
    lines = ["# Decoding cost of the systems, side by side (`kdasr bench --system`)", "",
             f"Run {b.run}. Machine:", *machine_lines(b.machine), ""]
    if b.command:
        lines += [f"Command: `{b.command}`", ""]
    if b.note:
        lines += [f"**Note:** {b.note}", ""]
    lines += [f"Audio: first {b.utterances} utterances of `{b.manifest}` ({b.seconds_audio:.1f} s); "
              f"onnxruntime intra-op threads: {b.threads}; rounds: {b.repeats}. {b.method}.", ""]
    base = b.system(b.baseline)
    lines += ["| system | decoding | RTFx b1 | p50 / p95 ms b1 | RTFx b16 | p50 / p95 ms b16 | "
              f"p50 b1 / {base.name} | WER % | CER % |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in b.systems:
        b1, b16 = s.batch1, s.batch16
        ratio = b1.latency_ms_p50 / base.batch1.latency_ms_p50
        precision = "" if s.precision == "fp32" else f", {s.precision}"
        lines.append(
            f"| {s.name} | {describe(s.decoding)}{precision} | {_num(b1.rtfx)} | {b1.latency_ms_p50:.0f} / "
            f"{b1.latency_ms_p95:.0f} | {_num(b16.rtfx)} | {b16.latency_ms_p50:.0f} / "
            f"{b16.latency_ms_p95:.0f} | {ratio:.2f} | {_num(s.wer, 2)} | {_num(s.cer, 2)} |")
    return "\n".join(lines) + "\n"


def describe(decoding: dict) -> str:
    """'beam 10 + CTC 0.2 + LM 0.3 (bonus 0.5)' from a DecodeOptions dict."""
    d = {**dataclasses.asdict(DecodeOptions()), **decoding}
    if d["method"] == "ctc":
        return "CTC greedy"
    parts = [f"beam {d['beam']}" if d["beam"] > 1 else "greedy"]
    if d["ctc_weight"]:
        parts.append(f"CTC {d['ctc_weight']:g}")
    if d["lm_weight"]:
        parts.append(f"LM fusion {d['lm_weight']:g}")
    text = " + ".join(parts)
    if d["length_bonus"]:
        text += f", bonus {d['length_bonus']:g}"
    if d["rescore"] != "none":
        text += f", {d['rescore'].upper()} rescoring {d['rescore_weight']:g}"
    return text


def write_systems_bench(b: SystemsBench, markdown: Path, json_path: Path) -> None:
    from ..io_utils import atomic_write_text

    markdown.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(b.to_json(), indent=2) + "\n")
    atomic_write_text(markdown, systems_markdown(b))
