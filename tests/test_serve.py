"""`kdasr serve` as a real process on a loopback port: every route and status code, micro-batched
results equal to solo decodes, limits, overload, timeouts, a bad upload followed by a good one, and
graceful shutdown. Uses the shipped model export/demo-en and the committed sample clips."""

from __future__ import annotations

import io
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from tests.serve_helpers import served, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "eval" / "samples").glob("*.flac"))


@contextmanager
def server(*args: str):
    """`kdasr serve ARGS` on a free loopback port, ready: (process, client), through
    tests/serve_helpers.served; the server's log is the process's `log` attribute (a file)."""
    with tempfile.TemporaryDirectory() as tmp, served(Path(tmp), *args) as (proc, client, log):
        proc.log = log
        yield proc, client


def long_wav(seconds: float) -> bytes:
    """Sample clips joined end to end (real speech) as a 16 kHz wav."""
    waves = [sf.read(p, dtype="float32")[0] for p in SAMPLES]
    wave = np.concatenate(waves * int(np.ceil(seconds / sum(len(w) / 16000 for w in waves))))[: int(seconds * 16000)]
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def in_threads(fn, args_list):
    out = [None] * len(args_list)

    def run(i, a):
        out[i] = fn(*a)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.fixture(scope="module")
def main_server():
    # batch up to 8, waiting up to 300 ms for company, so concurrent requests really share a batch
    with server("--max-batch", "8", "--max-wait-ms", "300", "--max-upload-mb", "0.5", "--max-audio-seconds", "12") as s:
        yield s


def test_probes_models_and_raw_bytes(main_server):
    _, c = main_server
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").status == 200
    models = c.get("/v1/models").json()
    assert models["data"][0]["id"] == "demo-en"
    r = c.transcribe_raw(SAMPLES[0].read_bytes(), beam=1, name=SAMPLES[0].name)
    assert r.status == 200, r.body
    body = r.json()
    assert body["path"] == SAMPLES[0].name and body["duration"] > 1 and len(body["text"]) > 10
    assert body["segments"][0]["start"] == 0.0 and body["segments"][0]["end"] == body["duration"]
    srt = c.transcribe_raw(SAMPLES[0].read_bytes(), beam=1, format="srt")
    assert srt.status == 200 and srt.body.decode().startswith("1\n00:00:00,000 --> ")


def test_openai_form_raw_multipart(main_server):
    _, c = main_server
    audio = SAMPLES[1].read_bytes()
    r = c.transcribe_form(audio, model="demo-en", response_format="json", language="en", temperature="0.4",
                          beam="1")
    assert r.status == 200 and set(r.json()) == {"text"}
    text = c.transcribe_form(audio, model="whisper-1", response_format="text", beam="1")
    assert text.status == 200 and text.body.decode().strip() == r.json()["text"]
    v = c.transcribe_form(audio, model="demo-en", response_format="verbose_json", beam="4", nbest="3")
    body = v.json()
    assert body["language"] == "english" and body["segments"][0]["end"] == body["duration"]
    assert len(body["nbest"]) == 3 and body["nbest"][0]["text"] == body["text"]
    assert body["nbest"][0]["score"] >= body["nbest"][1]["score"] >= body["nbest"][2]["score"]
    vtt = c.transcribe_form(audio, response_format="vtt", beam="1")
    assert vtt.status == 200 and vtt.body.decode().startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_truncated_wav_upload_is_transcribed_with_a_warning(main_server):
    _, c = main_server
    buf = io.BytesIO()
    sf.write(buf, sf.read(SAMPLES[0], dtype="float32")[0], 16000, format="WAV", subtype="PCM_16")
    whole = buf.getvalue()
    cut = whole[: len(whole) * 2 // 3]
    raw = c.transcribe_raw(cut, beam=1, name="cut.wav")
    assert raw.status == 200, raw.body
    assert len(raw.json()["warnings"]) == 1 and raw.json()["warnings"][0].startswith("truncated?")
    verbose = c.transcribe_form(cut, response_format="verbose_json", beam="1")
    assert verbose.status == 200 and verbose.json()["warnings"] == raw.json()["warnings"]
    assert "warnings" not in c.transcribe_raw(whole, beam=1).json()


def test_request_errors_are_json_with_the_reason(main_server):
    proc, c = main_server
    good = SAMPLES[2].read_bytes()
    cases = [
        (c.transcribe_raw(good[:4000]), 400, "invalid_audio"),  # truncated flac
        (c.transcribe_raw(b""), 400, "invalid_audio"),
        (c.transcribe_raw(b"this is not audio at all" * 20), 415, "unsupported_audio_format"),
        (c.transcribe_raw(good, beam=0), 400, "invalid_value"),
        (c.transcribe_raw(good, beam=99), 400, "invalid_value"),
        (c.transcribe_raw(good, beam="five"), 400, "invalid_value"),
        (c.transcribe_raw(good, format="docx"), 400, "invalid_value"),
        (c.transcribe_form(good, model="gpt-9"), 404, "model_not_found"),
        (c.transcribe_form(good, language="fr"), 400, "unsupported_language"),
        (c.transcribe_form(good, response_format="xml"), 400, "invalid_value"),
        (c.transcribe_raw(long_wav(14.0)), 413, "audio_too_long"),  # 0.45 MB: under the upload limit
        (c.transcribe_raw(os.urandom(600_000)), 413, "upload_too_large"),  # declared Content-Length
    ]
    for reply, status, code in cases:
        assert reply.status == status, (status, code, reply.body)
        err = reply.json()["error"]
        assert err["code"] == code and err["message"], err
    # a chunked upload (no Content-Length) is counted as it arrives
    chunks = (os.urandom(100_000) for _ in range(7))
    r = c.request("POST", "/v1/transcribe", chunks)
    assert r.status == 413 and r.json()["error"]["code"] == "upload_too_large"
    # ... and the same process still serves a good request
    assert proc.poll() is None
    ok = c.transcribe_raw(good, beam=1)
    assert ok.status == 200 and ok.json()["text"]
    assert c.metric("kdasr_request_errors_total", 'route="/v1/transcribe",status="415"') >= 1
    assert c.metric("kdasr_request_errors_total", 'route="/v1/transcribe",status="413"') >= 3


def test_micro_batched_results_equal_solo_and_bad_requests_do_not_poison(main_server):
    from kdasr.runtime import Transcriber

    _, c = main_server
    batches_before = c.metric("kdasr_batch_size_count")
    clips = [p.read_bytes() for p in SAMPLES]
    bad = [clips[0][:3000], b"RIFF...." * 10]  # corrupt uploads sent in the same burst
    replies = in_threads(lambda audio: c.transcribe_raw(audio, beam=3, nbest=2), [(a,) for a in clips + bad])
    assert [r.status for r in replies[len(clips):]] == [400, 415]
    assert all(r.status == 200 for r in replies[: len(clips)]), [r.body for r in replies]
    batches = c.metric("kdasr_batch_size_count") - batches_before
    assert batches < len(clips)  # some requests shared a batch (8 concurrent, 300 ms window)
    t = Transcriber(threads=1)
    opts = t.recommended_options(beam=3, nbest=2, batch_size=8)
    for path, reply in zip(SAMPLES, replies):
        solo = t.transcribe([str(path)], opts)[0]
        body = reply.json()
        assert body["text"] == solo.text
        assert [n["text"] for n in body["nbest"]] == [n.text for n in solo.nbest]
    assert c.metric("kdasr_audio_seconds_total") > 20


@pytest.mark.slow
def test_overload_503_timeout_504_then_recovers():
    with server("--max-batch", "1", "--max-queue", "1", "--request-timeout", "0.5", "--max-wait-ms", "0") as (_, c):
        # beam 16 over 3 minutes: seconds of decoding on one thread, many times the timeout even on a fast core
        # (16 s of audio once finished inside a 0.8 s timeout after the search got faster)
        slow = long_wav(180.0)
        first: list = []
        th = threading.Thread(target=lambda: first.append(c.transcribe_raw(slow, beam=16)))
        th.start()
        wait_for(lambda: c.metric("kdasr_requests_in_decode") == 1)
        second: list = []
        th2 = threading.Thread(target=lambda: second.append(c.transcribe_raw(SAMPLES[0].read_bytes(), beam=1)))
        th2.start()
        wait_for(lambda: c.metric("kdasr_queue_depth") == 1)
        over = c.transcribe_raw(SAMPLES[1].read_bytes(), beam=1)
        assert over.status == 503 and over.json()["error"]["code"] == "overloaded"
        assert int(over.headers["retry-after"]) >= 1
        th.join()
        th2.join()
        assert first[0].status == 504 and first[0].json()["error"]["code"] == "timeout"
        assert second[0].status in (200, 504)
        # the timed-out request stops after the piece in flight (onnxruntime cannot be interrupted)
        wait_for(lambda: c.metric("kdasr_requests_in_decode") == 0 and c.metric("kdasr_queue_depth") == 0, 180)
        ok = c.transcribe_raw(SAMPLES[1].read_bytes(), beam=1)
        assert ok.status == 200 and ok.json()["text"]
        assert c.metric("kdasr_request_errors_total", 'route="/v1/transcribe",status="503"') == 1


@pytest.mark.slow
def test_graceful_shutdown_finishes_in_flight_requests():
    with server("--max-batch", "1") as (proc, c):
        done: list = []
        # long enough to be caught in decode by the 50 ms poll on a fast core, short of the 60 s request timeout
        th = threading.Thread(target=lambda: done.append(c.transcribe_raw(long_wav(60.0), beam=6)))
        th.start()
        wait_for(lambda: c.metric("kdasr_requests_in_decode") == 1)
        proc.send_signal(signal.SIGTERM)
        th.join()
        assert done[0].status == 200 and done[0].json()["duration"] == 60.0
        # uvicorn re-raises the signal after its clean shutdown, so the status says SIGTERM
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.log.read_text()
