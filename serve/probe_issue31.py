"""Issue 31's hostile-client probe, before/after: each case starts a real `kdasr serve` of the checkout on
PYTHONPATH (so an older commit can be measured with the same script) and prints JSON.

  PYTHONPATH=<checkout> python serve/probe_issue31.py <label> rss slow idle killed timeout

rss: peak RSS (VmHWM) for a 599 s 96 kHz 8-channel constant-frame FLAC, a 1 kB WAV at 1 Hz, and a 599 s
96 kHz stereo FLAC; slow: a client sending headers at 1 byte/s (and another request meanwhile); idle: 1,100
idle sockets against a server limited to 1,024 descriptors; killed: 8 clients of 60 s audio closed after
3 s, then a short request; timeout: a 590 s file under --request-timeout 5, then two short requests.
Model: $KDASR_MODEL or export/demo-en of this checkout. Crafted files are written to /tmp once."""
import io
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
from kdasr.serve.client import Client  # noqa: E402

MODEL = os.environ.get("KDASR_MODEL", str(HERE / "export" / "demo-en"))
SAMPLES = sorted((HERE / "eval" / "samples").glob("*.flac"))


def crafted(path: str, rate: int, channels: int, seconds: int) -> Path:
    p = Path(path)
    if not p.exists():
        with sf.SoundFile(p, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
            block = np.full((rate, channels), 0.1, dtype=np.float32)
            for _ in range(seconds):
                f.write(block)
    return p


def one_hz_wav(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        sf.write(p, np.zeros(500), 1, format="WAV", subtype="PCM_16")  # 1,044 bytes claiming 500 s
    return p

label, cases = sys.argv[1], sys.argv[2:]
out = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args, max_fds=None):
    port = free_port()
    log = open(f"/tmp/m31-{label}-{port}.log", "w")

    def limit():
        if max_fds:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

    p = subprocess.Popen([sys.executable, "-m", "kdasr", "serve", "--model", MODEL, "--port", str(port), "--threads",
                          "1", "--log-level", "warning", *args], stdout=log, stderr=subprocess.STDOUT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=limit, cwd="/")  # not the cwd kdasr
    c = Client(port=port, timeout=300)
    c.wait_ready(180)
    return p, c, log.name


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(90)
    except subprocess.TimeoutExpired:
        p.kill()


def hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


def long_wav(seconds):
    waves = [sf.read(p, dtype="float32")[0] for p in SAMPLES]
    wave = np.concatenate(waves * int(np.ceil(seconds / sum(len(w) / 16000 for w in waves))))[: int(seconds * 16000)]
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


short = SAMPLES[0].read_bytes()

if "rss" in cases:
    crafted = crafted("/tmp/crafted31.flac", 96000, 8, 599).read_bytes()  # 600 s, 96 kHz, 8 channels, constant frames
    p, c, _ = start()
    before = hwm(p.pid)
    t0 = time.monotonic()
    r = c.transcribe_raw(crafted, name="crafted.flac")
    out["crafted_flac"] = {"bytes": len(crafted), "status": r.status, "seconds": round(time.monotonic() - t0, 2),
                           "hwm_before_mb": round(before), "hwm_after_mb": round(hwm(p.pid)),
                           "reply": r.body[:160].decode(errors="replace")}
    onehz = one_hz_wav("/tmp/onehz31.wav").read_bytes()
    st = lambda: sum(int(x) for x in Path(f"/proc/{p.pid}/stat").read_text().split()[13:15]) / os.sysconf("SC_CLK_TCK")  # noqa: E731
    s0, t0 = st(), time.monotonic()
    r = c.transcribe_raw(onehz, name="onehz.wav")
    out["onehz_wav"] = {"bytes": len(onehz), "status": r.status, "seconds": round(time.monotonic() - t0, 2),
                        "server_cpu_s": round(st() - s0, 2), "reply": r.body[:160].decode(errors="replace")}
    stop(p)
    # a 96 kHz stereo 599 s file is accepted after the change: decoded in blocks
    stereo = crafted("/tmp/stereo31.flac", 96000, 2, 599).read_bytes()
    p, c, _ = start()
    before = hwm(p.pid)
    t0 = time.monotonic()
    r = c.transcribe_raw(stereo, name="stereo.flac", beam=1)
    out["stereo_96k_599s"] = {"bytes": len(stereo), "status": r.status, "seconds": round(time.monotonic() - t0, 2),
                              "hwm_before_mb": round(before), "hwm_after_mb": round(hwm(p.pid))}
    stop(p)

if "slow" in cases:
    p, c, _ = start()
    res = {}

    def trickle():
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", c.port), timeout=90) as s:
            data = b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
            for b in data:
                if select.select([s], [], [], 1.0)[0] or time.monotonic() - t0 > 40:
                    break
                s.sendall(bytes([b]))
            s.settimeout(1)
            try:
                reply = s.recv(200)
            except TimeoutError:
                reply = b"(nothing after 40 s)"
        res["answer_s"], res["reply"] = round(time.monotonic() - t0, 1), reply[:60].decode(errors="replace")

    th = threading.Thread(target=trickle)
    th.start()
    time.sleep(2)
    t0 = time.monotonic()
    r = c.transcribe_raw(short, beam=1)
    res["other_request"] = (r.status, round(time.monotonic() - t0, 2))
    th.join()
    out["slow_client_1_byte_per_s"] = res
    stop(p)

if "idle" in cases:
    p, c, logname = start(max_fds=1024)
    socks = []
    for _ in range(1100):
        try:
            socks.append(socket.create_connection(("127.0.0.1", c.port), timeout=5))
        except OSError:
            break
    time.sleep(1)
    c.timeout = 20
    t0 = time.monotonic()
    try:
        r = c.transcribe_raw(short, beam=1)
        status = r.status
    except OSError as e:
        status = f"{type(e).__name__}"
    took = time.monotonic() - t0
    time.sleep(5)
    for s in socks:
        s.close()
    stop(p)
    log = Path(logname).read_text()
    out["idle_1100_sockets_fd_limit_1024"] = {"opened": len(socks), "normal_request": status,
                                              "normal_request_s": round(took, 2), "log_lines": log.count("\n"),
                                              "log_bytes": len(log)}

if "killed" in cases:
    p, c, _ = start()
    audio = long_wav(60.0)
    held = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", c.port))
        s.sendall(f"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: {len(audio)}\r\n\r\n".encode() + audio)
        held.append(s)
    time.sleep(3)
    for s in held:
        s.close()
    t0 = time.monotonic()
    r = c.transcribe_raw(short, beam=1)
    out["after_8_killed_60s_clients"] = {"status": r.status, "short_request_s": round(time.monotonic() - t0, 2)}
    stop(p)

if "timeout" in cases:
    p, c, _ = start("--request-timeout", "5")
    res = {}

    def long_one():
        r = c.transcribe_raw(long_wav(590.0))
        res["long"] = r.status

    th = threading.Thread(target=long_one)
    th.start()
    time.sleep(6)  # the long one has timed out by now (its upload takes a moment)
    nxt = []
    for _ in range(2):
        t0 = time.monotonic()
        r = c.transcribe_raw(short, beam=1)
        nxt.append((r.status, round(time.monotonic() - t0, 2)))
    th.join()
    res["next_two_short"] = nxt
    out["after_590s_under_request_timeout_5"] = res
    stop(p)

print(json.dumps({label: out}, indent=1))
