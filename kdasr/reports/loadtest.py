"""Load test of `kdasr serve` on loopback only, bounded, stopping by itself:

  python -m kdasr.reports.loadtest --clients 8 --duration 30 --out eval/reports/serving.md

For each mode (micro-batching on: --max-batch B; off: --max-batch 1) it starts a server process on
127.0.0.1, runs N concurrent clients for a fixed duration (or until --max-requests), then sends one long
file, and records requests/s, audio seconds/s, latency percentiles, errors, the server's peak RSS and
its RSS after the run and after the long file. Both modes run in one invocation, side by side."""

from __future__ import annotations

import argparse
import io
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..serve.client import Client

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Phase:
    mode: str
    max_batch: int
    flags: tuple[str, ...] = ()
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    audio_seconds: float = 0.0
    wall: float = 0.0
    mean_batch: float = 0.0
    rss: dict[str, int] = field(default_factory=dict)  # MB
    long_status: int = 0
    long_latency: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, MB (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            out[line.split(":")[0]] = int(line.split()[1]) // 1024
    return out


def _clips(paths: list[Path]) -> list[tuple[bytes, float]]:
    return [(p.read_bytes(), sf.info(str(p)).duration) for p in paths]


def _long_file(paths: list[Path], seconds: float) -> bytes:
    wave = np.concatenate([sf.read(str(p), dtype="float32")[0] for p in paths])
    wave = np.tile(wave, int(np.ceil(seconds * 16000 / len(wave))))[: int(seconds * 16000)]
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="FLAC")
    return buf.getvalue()


def run_phase(args, mode: str, max_batch: int, clips, long_audio: bytes, flags: tuple[str, ...] = ()) -> Phase:
    port = _free_port()
    cmd = [sys.executable, "-m", "kdasr", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--threads", str(args.threads), "--max-batch", str(max_batch), "--max-wait-ms", str(args.max_wait_ms),
           "--max-queue", str(max(64, 4 * args.clients)), "--request-timeout", "300", "--log-level", "warning", *flags]
    if args.model:
        cmd += ["--model", str(args.model)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    phase = Phase(mode, max_batch, flags)
    try:
        client = Client(port=port, timeout=300)
        client.wait_ready(120)
        lock, counter = threading.Lock(), [0]
        deadline = time.monotonic() + args.duration

        def worker(k: int) -> None:
            i = k
            while time.monotonic() < deadline:
                with lock:
                    if counter[0] >= args.max_requests:
                        return
                    counter[0] += 1
                audio, seconds = clips[i % len(clips)]
                i += args.clients
                t0 = time.monotonic()
                try:
                    status = client.transcribe_raw(audio, beam=args.beam).status
                except OSError:
                    status = -1  # connection error
                with lock:
                    phase.statuses[status] = phase.statuses.get(status, 0) + 1
                    if status == 200:
                        phase.latencies.append(time.monotonic() - t0)
                        phase.audio_seconds += seconds

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        phase.wall = time.monotonic() - started
        count, total = client.metric("kdasr_batch_size_count"), client.metric("kdasr_batch_size_sum")
        phase.mean_batch = total / count if count else 0.0
        mem = _memory(proc.pid)
        phase.rss["peak_load"], phase.rss["after_load"] = mem["VmHWM"], mem["VmRSS"]
        t0 = time.monotonic()
        phase.long_status = client.transcribe_raw(long_audio, beam=args.beam).status
        phase.long_latency = time.monotonic() - t0
        time.sleep(3)
        mem = _memory(proc.pid)
        phase.rss["peak_long"], phase.rss["after_long"] = mem["VmHWM"], mem["VmRSS"]
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return phase


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal")) / 1024 / 1024
    import onnxruntime

    return (f"{model}, {os.cpu_count()} logical cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}")


def report(args, phases: list[Phase], load_before, load_after, command: str) -> str:
    rows = [
        ("requests (200 / all)", lambda p: f"{len(p.latencies)} / {p.requests}"),
        ("errors (non-200)", lambda p: str(p.errors)),
        ("requests/s", lambda p: f"{len(p.latencies) / p.wall:.2f}"),
        ("audio seconds / s (RTFx of the server)", lambda p: f"{p.audio_seconds / p.wall:.1f}"),
        ("latency p50 (ms)", lambda p: f"{p.pct(50):.0f}"),
        ("latency p95 (ms)", lambda p: f"{p.pct(95):.0f}"),
        ("latency p99 (ms)", lambda p: f"{p.pct(99):.0f}"),
        ("mean requests per decoded batch (/metrics)", lambda p: f"{p.mean_batch:.2f}"),
        ("peak RSS during the load (MB)", lambda p: str(p.rss.get("peak_load"))),
        ("RSS after the load (MB)", lambda p: str(p.rss.get("after_load"))),
        (f"long file ({args.long_seconds:g} s): status, latency (s)",
         lambda p: f"{p.long_status}, {p.long_latency:.1f}"),
        ("peak RSS after the long file (MB)", lambda p: str(p.rss.get("peak_long"))),
        ("RSS 3 s after the long file (MB)", lambda p: str(p.rss.get("after_long"))),
    ]
    head = "| | " + " | ".join(
        f"micro-batching {p.mode} (max batch {p.max_batch}{', ' + ' '.join(p.flags) if p.flags else ''})"
        for p in phases) + " |"
    lines = [head, "|---" * (len(phases) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fn(p) for p in phases) + " |" for name, fn in rows]
    return "\n".join([
        "# Serving: load test (`kdasr serve`, loopback)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}. Load average before {load_before}, after {load_after}." + (
            f" {args.note}" if args.note else ""),
        "",
        f"Each mode: a fresh `kdasr serve` process on 127.0.0.1 ({args.threads} onnxruntime threads, "
        f"max wait {args.max_wait_ms:g} ms), {args.clients} concurrent clients sending the {len(args.clips)} "
        f"clips of eval/samples round-robin as raw bytes (POST /v1/transcribe, beam {args.beam}) for "
        f"{args.duration:g} s (at most {args.max_requests} requests), then one {args.long_seconds:g} s file. "
        "Latency is client-side wall time per request (upload + queue + decode + reply). "
        "The server's batch budget also batches one file's pieces, so with max batch 1 a long file's "
        "20 s pieces are decoded one at a time too.",
        "",
        *lines,
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model dir (default: the server's default)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load per mode")
    ap.add_argument("--max-requests", type=int, default=2000, help="per mode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=8, help="the 'on' mode's batch")
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--long-seconds", type=float, default=120.0)
    ap.add_argument("--keep-arena", action="store_true",
                    help="also run batching on with --no-release-memory (what the memory release buys)")
    ap.add_argument("--note", default="", help="a line for the report (e.g. what else the machine runs)")
    ap.add_argument("--out", type=Path, default=None, help="markdown report (default: print)")
    args = ap.parse_args(argv)
    args.clips = sorted((ROOT / "eval" / "samples").glob("*.flac"))
    clips, long_audio = _clips(args.clips), _long_file(args.clips, args.long_seconds)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    phases = []
    modes = [("on", args.max_batch, ()), ("off", 1, ())]
    if args.keep_arena:  # the memory release's effect, same load
        modes.append(("on", args.max_batch, ("--no-release-memory",)))
    for mode, batch, flags in modes:
        print(f"mode {mode} {' '.join(flags)}: {args.clients} clients for {args.duration:g} s", file=sys.stderr)
        phases.append(run_phase(args, mode, batch, clips, long_audio, flags))
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    command = "python -m kdasr.reports.loadtest " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = report(args, phases, load_before, load_after, command)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()
