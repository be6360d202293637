"""A real `kdasr serve` process for the hostile-client tests: extra env, a descriptor limit, and its log in a
file that the test can read while the server runs."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from kdasr.serve.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(tmp_path: Path, *args: str, env: dict | None = None, max_fds: int | None = None, ready: bool = True):
    """(process, client, log path). `env` is added to the environment; `max_fds` limits descriptors."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    cmd = [sys.executable, "-m", "kdasr", "serve", "--port", str(port), "--threads", "1", "--log-level", "warning",
           *args]

    def limit():
        if max_fds is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, text=True, preexec_fn=limit)
    client = Client(port=port, timeout=60)
    try:
        if ready:
            client.wait_ready(180)
        yield proc, client, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def wait_for(cond, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
