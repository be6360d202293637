"""A small stdlib HTTP client for the server (the load test and the tests use it; no extra dependency)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class Client:
    def __init__(self, host: str = "127.0.0.1", port: int = 8000, timeout: float = 120.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> Reply:
        """`body`: bytes, or an iterable of bytes sent with chunked transfer encoding."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            chunked = body is not None and not isinstance(body, bytes | bytearray)
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def transcribe_raw(self, audio: bytes, **params) -> Reply:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return self.request("POST", "/v1/transcribe" + (f"?{query}" if query else ""), audio,
                            {"Content-Type": "application/octet-stream"})

    def transcribe_form(self, audio: bytes, filename: str = "audio.flac", **fields) -> Reply:
        """POST /v1/audio/transcriptions as the OpenAI API's multipart form."""
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items() if v is not None
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode() + audio + b"\r\n"
        )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", "/v1/audio/transcriptions", body,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def metric(self, name: str, labels: str = "") -> float:
        """One sample's value from GET /metrics (0 when absent), e.g. metric('kdasr_queue_depth')."""
        key = f"{name}{{{labels}}}" if labels else name
        for line in self.get("/metrics").body.decode().splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.get("/readyz").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server on {self.host}:{self.port} not ready after {timeout_s:g} s")
