"""`kdasr bench --system NAME=MODEL_DIR[:OPTIONS.json] ...`: the decoding cost of several systems
side by side in one run on the same audio, measured into a SystemsBench record, written as
Markdown (`systems_markdown`) and as JSON beside it (`SystemsBench.to_json`: what `kdasr
paper-table` and `kdasr card` read). Torch-free.

Each system is a model dir decoded with its recommended decoding, or with an options file from
`kdasr tune` (fusion, rescoring: the file names its LM dir), at the precision the dir recommends for
the CPU (as kdasr eval; recorded per system), or a reference recogniser (`NAME=faster-whisper:tiny.en`,
bench_engines: whisper as `kdasr eval-reference` runs it, timed and scored by the same code; a mode
it cannot run is recorded as n/a with the reason in the row's notes, never estimated). Per system,
two modes on the same
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import load_audio
from ..data.manifest import read_manifest
from ..errors import KdasrError
from ..eval.run import reference
from ..eval.wer import error_rates
from ..runtime import DecodeOptions
from .bench import machine_info
from .bench_engines import FASTER_WHISPER, SystemSpec, describe_reference, load_engine, parse_system
from .bench_report import machine_lines

__all__ = ["SystemSpec", "parse_system"]  # re-exported: where the CLI has always taken them

BENCH_FORMAT = 1
BATCHES = (1, 16)


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
    engine: object  # bench_engines.KdasrEngine or FasterWhisperEngine
    na16: str | None = None  # why batch 16 is not run (then its cells are n/a)
    b1: list[float] | None = None  # per utterance, best over rounds
    b16: list[float] | None = None  # per batch of 16, best over rounds
    cpu: dict | None = None
    hyps: list[str] | None = None  # raw texts of batch 1
    hyps16: list[str] | None = None  # and of batch 16 (not scored: compared with batch 1's)


def _timed(fn) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def _round(s: _Loaded, waves: list[np.ndarray]) -> None:
    """One round of both modes; keep each item's fastest time."""
    b1, cpu1, hyps = [], 0.0, []
    for w in waves:
        wall, cpu, texts = _timed(lambda w=w: s.engine.decode([w], 1))
        b1.append(wall)
        cpu1 += cpu
        hyps += texts
    b16, cpu16, hyps16 = [], 0.0, []
    for i in range(0, len(waves), 16) if s.na16 is None else ():
        wall, cpu, texts = _timed(lambda i=i: s.engine.decode(waves[i : i + 16], 16))
        hyps16 += texts
        b16.append(wall)
        cpu16 += cpu
    s.b1 = b1 if s.b1 is None else list(np.minimum(s.b1, b1))
    s.b16 = b16 if s.b16 is None else list(np.minimum(s.b16, b16))
    cpu = {"batch1": cpu1, "batch16": cpu16}
    s.cpu = cpu if s.cpu is None else {k: min(v, cpu[k]) for k, v in s.cpu.items()}
    s.hyps = s.hyps or hyps
    s.hyps16 = s.hyps16 or hyps16


@dataclass(frozen=True)
class ModeStats:
    """One mode (batch 1 or 16) of one system: RTFx and summed wall/CPU seconds of the calls,
    latency per utterance (at batch 16: its batch's wall time). A mode not run (n/a): every
    figure None, the reason in the system's notes."""

    rtfx: float | None
    wall_s: float | None
    cpu_s: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_mean: float | None


NOT_RUN = ModeStats(None, None, None, None, None, None)


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
    batch16_same_text: int | None = None  # utterances whose scored batch-16 text equals batch 1's
    engine: str = "kdasr"  # or "faster-whisper" (a reference system; its decoding dict says which model)
    notes: tuple[str, ...] = field(default_factory=tuple)  # the report's footnotes for this row
    precision: str = "fp32"  # the graphs that ran (the dir's recommendation; faster-whisper: int8); older records: fp32


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
    loaded = [_Loaded(s, load_engine(s, cfg.threads)) for s in cfg.systems]
    waves_at = {  # the audio at each system's own sample rate (its model's)
        rate: [load_audio(u.audio, rate, start=u.start, duration=u.duration) for u in utts]
        for rate in dict.fromkeys(s.engine.sample_rate for s in loaded)
    }
    rate, first = next(iter(waves_at.items()))
    audio = sum(len(w) for w in first) / rate
    for s in loaded:  # warm-up: session allocations, teachers loaded on first use
        s.na16 = s.engine.batch16_unavailable(waves_at[s.engine.sample_rate])
        s.engine.warm_up(waves_at[s.engine.sample_rate])
    for r in range(max(1, cfg.repeats)):
        for s in loaded:
            progress(f"round {r + 1}/{max(1, cfg.repeats)}: {s.spec.name}")
            _round(s, waves_at[s.engine.sample_rate])
    refs = [reference(u)[0] for u in utts]  # normalised like kdasr eval; None: not scorable (digits)
    scored = [i for i, r in enumerate(refs) if r is not None]
    systems = []
    for s in loaded:
        e = s.engine
        hyps = [e.scored(h) for h in s.hyps]  # as kdasr eval / eval-reference score each system
        same = sum(a == e.scored(b) for a, b in zip(hyps, s.hyps16, strict=True)) if s.na16 is None else None
        differs = () if same in (None, len(utts)) else (
            f"batch 16's text differs from batch 1's on {len(utts) - same} of {len(utts)} utterances "
            "(WER/CER are batch 1's)",)
        rates = error_rates([refs[i] for i in scored], [hyps[i] for i in scored]) if scored else None
        per_batch16 = [s.b16[i // 16] for i in range(len(utts))] if s.na16 is None else None  # waits for its batch
        systems.append(SystemRecord(
            name=s.spec.name, model=e.model, options_file=e.options_file, lm=str(e.lm) if e.lm else None,
            decoding=e.decoding, batch1=_mode(s.b1, s.b1, audio, s.cpu["batch1"]),
            batch16=NOT_RUN if per_batch16 is None else _mode(per_batch16, s.b16, audio, s.cpu["batch16"]),
            wer=rates.wer if rates else None, cer=rates.cer if rates else None,
            engine=FASTER_WHISPER if s.spec.reference else "kdasr",
            batch16_same_text=same, precision=e.precision,
            notes=(*e.notes, *((s.na16,) if s.na16 else ()), *differs),
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


def _cells(m: ModeStats) -> tuple[str, str]:
    """RTFx and 'p50 / p95' of a mode; n/a when it was not run."""
    if m.latency_ms_p50 is None:
        return "n/a", "n/a"
    return _num(m.rtfx), f"{m.latency_ms_p50:.0f} / {m.latency_ms_p95:.0f}"


def systems_markdown(b: SystemsBench) -> str:
    lines = ["# Decoding cost of the systems, side by side (`kdasr bench --system`)", "",
             f"Run {b.run}. Machine:", *machine_lines(b.machine), ""]
    if b.command:
        lines += [f"Command: `{b.command}`", ""]
    if b.note:
        lines += [f"**Note:** {b.note}", ""]
    fw = " (faster-whisper: cpu_threads)" if any(s.engine == FASTER_WHISPER for s in b.systems) else ""
    lines += [f"Audio: first {b.utterances} utterances of `{b.manifest}` ({b.seconds_audio:.1f} s); "
              f"onnxruntime intra-op threads: {b.threads}{fw}; rounds: {b.repeats}. {b.method}.", ""]
    base = b.system(b.baseline)
    lines += ["| system | decoding | RTFx b1 | p50 / p95 ms b1 | RTFx b16 | p50 / p95 ms b16 | "
              f"p50 b1 / {base.name} | WER % | CER % |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for s in b.systems:
        ratio = s.batch1.latency_ms_p50 / base.batch1.latency_ms_p50
        marks = "".join(f"[^{len(notes) + i + 1}]" for i in range(len(s.notes)))
        notes += [f"[^{len(notes) + i + 1}]: {s.name}: {n}" for i, n in enumerate(s.notes)]
        precision = "" if s.precision == "fp32" or s.engine != "kdasr" else f", {s.precision}"
        lines.append(f"| {s.name}{marks} | {describe(s.decoding)}{precision} | {' | '.join(_cells(s.batch1))} | "
                     f"{' | '.join(_cells(s.batch16))} | {ratio:.2f} | {_num(s.wer, 2)} | {_num(s.cer, 2)} |")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def describe(decoding: dict) -> str:
    """'beam 10 + CTC 0.2 + LM 0.3 (bonus 0.5)' from a DecodeOptions dict; a reference system's
    from its own ('faster-whisper tiny.en int8, beam 5')."""
    if decoding.get("engine") == FASTER_WHISPER:
        return describe_reference(decoding)
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
