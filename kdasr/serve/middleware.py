"""Pure ASGI middleware: request metrics by route and status, and the upload-size limit (413) applied
before any body parsing (a declared Content-Length is checked first; a chunked body is counted).

An oversized body is read and dropped (up to DRAIN_FACTOR x the limit, never kept) before the 413 is
sent: most clients send the whole body before reading a reply and would otherwise see a broken pipe
instead of the JSON error. Beyond that the connection is simply closed after the 413."""

from __future__ import annotations

import json
import time

from .errors import ApiError
from .metrics import Metrics

DRAIN_FACTOR = 4


class MetricsMiddleware:
    def __init__(self, app, metrics: Metrics, routes: set[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"  # bounded label values
            self.metrics.observe_request(route, status[0], time.monotonic() - started)


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                if int(declared) <= DRAIN_FACTOR * self.max_bytes:
                    await self._drain(receive)
                return await self._too_large(send, int(declared))
            return await self.app(scope, receive, send)
        chunks, size = [], 0  # chunked upload: read it here, counting, then replay it to the app
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                if message.get("more_body"):
                    size += await self._drain(receive, DRAIN_FACTOR * self.max_bytes - size)
                return await self._too_large(send, size)
            if not message.get("more_body"):
                break
        body, sent = b"".join(chunks), [False]

        async def replay():
            if sent[0]:
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive, budget: int | None = None) -> int:
        """Read and drop the rest of the body (at most `budget` bytes); returns the bytes dropped."""
        dropped = 0
        while budget is None or dropped <= budget:
            message = await receive()
            dropped += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        return dropped

    async def _too_large(self, send, size: int) -> None:
        limit_mb = self.max_bytes / 1024 / 1024
        err = ApiError(413, f"upload of {size} bytes is above the server's limit ({limit_mb:g} MB)",
                       "upload_too_large", "file")
        body = json.dumps(err.body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
