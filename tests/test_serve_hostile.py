"""Issue 31 (server): what a hostile client or a careless operator could do to a real `kdasr serve` process.
Bounded memory for crafted uploads, slow and idle sockets, a connection cap, rate-limited accept errors,
readiness that fails loudly, and client-caused 500s."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")

from tests.serve_helpers import raw_exchange, read_all, rss_peak_mb, served, wait_for  # noqa: E402

pytestmark = pytest.mark.slow  # real server processes: over 2 s a test (measured)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "eval" / "samples").glob("*.flac"))[0]
MODEL = ROOT / "export" / "demo-en-small"


def crafted_flac(seconds: float, rate: int = 96000, channels: int = 8) -> bytes:
    """Constant frames: a small file that claims a lot of audio (the probe's 30 KB FLAC, shorter)."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
        block = np.full((rate, channels), 0.1, dtype=np.float32)
        for _ in range(int(seconds)):
            f.write(block)
    return buf.getvalue()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    args = ("--max-audio-seconds", "30", "--header-timeout", "2", "--body-timeout", "2", "--max-connections", "24")
    with served(tmp_path_factory.mktemp("limited"), *args) as s:
        yield s


def test_crafted_uploads_are_refused_from_the_header_and_memory_stays_bounded(limited):
    proc, c, _ = limited
    before = rss_peak_mb(proc.pid)
    many = crafted_flac(29)  # 29 s x 96 kHz x 8 channels: under the duration limit, over the input budget
    assert len(many) < 60_000
    r = c.transcribe_raw(many, name="many.flac")
    assert r.status == 413 and r.json()["error"]["code"] == "audio_too_large", r.body
    assert "8 channels at 96000 Hz" in r.json()["error"]["message"]
    print("peak RSS MB before / after the 8-channel file:", before, rss_peak_mb(proc.pid))
    assert rss_peak_mb(proc.pid) - before < 10  # decoding it whole would take 89 MB of float32
    # the same duration in stereo is decoded in blocks: beyond what the same audio at 16 kHz mono costs (the
    # encoder's own peak), the peak grows by a few MB, not by the 22 MB + copies of decoding it whole
    for rate, channels in ((16000, 1), (96000, 2)):
        ok = c.transcribe_raw(crafted_flac(29, rate, channels), name="constant.flac", beam=1)
        assert ok.status == 200 and ok.json()["duration"] == pytest.approx(29.0, abs=0.01), ok.body
        peaks = [*locals().get("peaks", []), rss_peak_mb(proc.pid)]
    print("peak RSS MB after the mono and the stereo file:", peaks)
    assert peaks[1] - peaks[0] < 12
    # a 1 kB WAV "at 1 Hz" claiming 500 s: refused at once, not 8 M samples of upsampling
    onehz = io.BytesIO()
    sf.write(onehz, np.zeros(500), 1, format="WAV", subtype="PCM_16")
    t0 = time.monotonic()
    r = c.transcribe_raw(onehz.getvalue(), name="onehz.wav")
    assert r.status == 400 and "sample rate 1 Hz is below 4000 Hz" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < 2
    # a header that understates: decoding stops at the limit (a raw-header WAV whose data runs past it)
    long_body = io.BytesIO()
    sf.write(long_body, np.zeros(16000 * 40, np.float32), 16000, format="WAV", subtype="PCM_16")
    data = bytearray(long_body.getvalue())
    data[40:44] = (16000 * 2 * 10).to_bytes(4, "little")  # data chunk says 10 s, 40 s follow
    r = c.transcribe_raw(bytes(data), name="under.wav", beam=1)
    assert r.status in (200, 413)  # libsndfile trusts the chunk size (10 s): either way never above the limit
    if r.status == 200:
        assert r.json()["duration"] <= 30


def test_slow_headers_and_slow_bodies_get_408_within_the_timeout_while_others_are_served(limited):
    _, c, _ = limited
    good = SAMPLE.read_bytes()

    def trickle(head: bytes, body: bytes) -> tuple[bytes, float]:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", c.port), timeout=15) as s:
            s.sendall(head)
            for b in body:  # 1 byte per 0.2 s, far below what the deadline allows, until the server answers
                if select.select([s], [], [], 0.2)[0]:
                    break
                s.sendall(bytes([b]))
            return read_all(s), time.monotonic() - t0

    out: dict = {}
    endless_head = b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
    slow_head = threading.Thread(target=lambda: out.update(head=trickle(b"", endless_head)))
    header = f"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: {len(good)}\r\n\r\n".encode()
    slow_body = threading.Thread(target=lambda: out.update(body=trickle(header, good[:200])))
    slow_head.start()
    slow_body.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    ok = c.transcribe_raw(good, beam=1)  # served meanwhile
    assert ok.status == 200 and time.monotonic() - t0 < 10
    slow_head.join()
    slow_body.join()
    for key, what in (("head", b"headers"), ("body", b"body")):
        reply, took = out[key]
        assert reply.startswith(b"HTTP/1.1 408"), (key, reply[:200])
        assert b'"code": "request_timeout"' in reply or b'"code":"request_timeout"' in reply
        assert b"request " + what + b" not received within 2 s" in reply
        assert took < 5, (key, took)


def test_idle_sockets_cannot_exhaust_descriptors_or_lock_clients_out(limited):
    proc, c, log = limited
    fds_before = len(os.listdir(f"/proc/{proc.pid}/fd"))
    idle = [socket.create_connection(("127.0.0.1", c.port)) for _ in range(60)]  # 2.5 x --max-connections
    try:
        time.sleep(0.3)
        assert len(os.listdir(f"/proc/{proc.pid}/fd")) <= fds_before + 26  # the cap (24) and a little
        t0 = time.monotonic()
        ok = c.transcribe_raw(SAMPLE.read_bytes(), beam=1)  # evicts the oldest idle socket
        assert ok.status == 200 and time.monotonic() - t0 < 10
        # busy connections (each has started a request) are not evicted: the next one gets a clear 503
        busy = []
        for s in idle:
            s.close()
        wait_for(lambda: len(os.listdir(f"/proc/{proc.pid}/fd")) <= fds_before + 2, 10)
        for _ in range(24):
            s = socket.create_connection(("127.0.0.1", c.port))
            s.sendall(b"POST /v1/transcribe HTTP/1.1\r\n")
            busy.append(s)
        time.sleep(0.2)
        refused = raw_exchange(c.port, b"")
        assert refused.startswith(b"HTTP/1.1 503") and b"too_many_connections" in refused, refused[:300]
        for s in busy:  # the header deadline (2 s) frees them: each gets its 408
            s.settimeout(5)
            assert read_all(s).startswith(b"HTTP/1.1 408")
        assert c.transcribe_raw(SAMPLE.read_bytes(), beam=1).status == 200
    finally:
        for s in idle:
            s.close()
    assert log.read_text().count("connection refused") <= 2  # rate-limited, not one line per socket


def test_descriptor_limit_caps_connections_and_accept_errors_are_rate_limited(tmp_path, caplog):
    # the server raises its soft limit to the hard one and keeps its cap below it: no EMFILE at all
    with served(tmp_path, "--log-level", "info", max_fds=512) as (proc, c, log):
        assert "at most 224 connections" in log.read_text()
        idle = [socket.create_connection(("127.0.0.1", c.port)) for _ in range(300)]
        try:
            assert c.transcribe_raw(SAMPLE.read_bytes(), beam=1).status == 200
        finally:
            for s in idle:
                s.close()
        assert "accept() failed" not in log.read_text() and "Traceback" not in log.read_text()
    # when accept() does fail (EMFILE), asyncio's report becomes one line per interval
    from kdasr.serve.connections import install_accept_error_filter

    async def flood():
        loop = asyncio.get_running_loop()
        install_accept_error_filter(loop)
        for _ in range(2000):
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})

    with caplog.at_level(logging.WARNING, logger="kdasr.serve"):
        asyncio.run(flood())
    lines = [r for r in caplog.records if "accept() failed" in r.getMessage()]
    assert len(lines) == 1 and "Too many open files" in lines[0].getMessage() and lines[0].exc_info is None


def _model_copy(tmp_path: Path, **decoding) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    for f in MODEL.iterdir():
        if f.name != "model.json":
            (d / f.name).symlink_to(f)
    spec = json.loads((MODEL / "model.json").read_text())
    spec["decoding"].update(decoding)
    (d / "model.json").write_text(json.dumps(spec))  # json writes NaN as NaN, as the probe's file had it
    return d


@pytest.mark.parametrize("decoding,cause", [
    ({"max_segment_seconds": float("nan")}, "decoding: max_segment_seconds must be a finite number, not nan"),
    ({"lm_weight": 0.3}, "warm-up decode failed: RuntimeError: --lm-weight needs an LM"),
])
def test_a_model_that_cannot_decode_exits_non_zero_with_one_line(tmp_path, decoding, cause):
    model = _model_copy(tmp_path, **decoding)
    cmd = [sys.executable, "-m", "kdasr", "serve", "--model", str(model), "--port", "0", "--threads", "1",
           "--log-level", "critical"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1, done
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and cause in lines[0], done.stderr
    assert str(model) in lines[0]


def test_bad_numbers_are_400_and_every_error_has_openai_shape(limited):
    _, c, log = limited
    good = SAMPLE.read_bytes()
    for params, field in [({"max_segment_seconds": "nan"}, "max_segment_seconds"),
                          ({"max_segment_seconds": "inf"}, "max_segment_seconds"),
                          ({"length_bonus": "inf"}, "length_bonus"), ({"length_bonus": "nan"}, "length_bonus"),
                          ({"ctc_weight": "nan"}, "ctc_weight"), ({"length_penalty": "-inf"}, "length_penalty")]:
        r = c.transcribe_raw(good, **params)
        assert r.status == 400, (params, r.body)
        err = r.json()["error"]
        assert err["code"] == "invalid_value" and err["param"] == field and field in err["message"]
    r = c.transcribe_form(good, temperature="nan")
    assert r.status == 400 and r.json()["error"]["param"] == "temperature"
    for reply, status, code in [(c.get("/nope"), 404, "not_found"), (c.request("DELETE", "/v1/models"), 405,
                                                                   "method_not_allowed")]:
        assert reply.status == status and reply.json()["error"]["code"] == code and "detail" not in reply.json()
    assert "x-request-id" in c.get("/v1/models").headers
    assert "Traceback" not in log.read_text()
