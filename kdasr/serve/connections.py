"""Connection-level guards uvicorn lacks: a cap on open connections, a deadline for a request's headers,
and rate-limited logging of accept() failures.

- Above `max_connections`, the oldest connection that has not sent a byte (an idle socket) is closed to
  make room; if every connection is busy the new one gets a 503 in OpenAI's error shape and is closed.
  So a flood of idle sockets can neither exhaust the descriptors nor lock real clients out.
- A connection must deliver its request's headers within `header_timeout_s` of opening (or of the
  previous response, when kept alive), else it gets 408 (or is closed if it sent nothing).
  uvicorn's own keep-alive timer restarts on every byte, so 1 byte/s would hold a socket for ever.
- asyncio logs `accept()` EMFILE with a traceback once per queued connection (up to the backlog) each
  time it retries: 145,014 lines in 25 s in the probe. One line per interval instead.

The body's deadline is an ASGI middleware (middleware.ReadTimeoutMiddleware): it can answer in JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ApiError

log = logging.getLogger("kdasr.serve")
FD_RESERVE = 64  # descriptors kept for the model files, logs, the listening socket, ...


def raw_error(err: ApiError) -> bytes:
    """A complete HTTP/1.1 response carrying `err`, written straight to the socket; closes the connection."""
    body = json.dumps(err.body()).encode()
    head = [f"HTTP/1.1 {err.status} {_PHRASES.get(err.status, 'Error')}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in err.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_PHRASES = {408: "Request Timeout", 503: "Service Unavailable"}


def fit_connection_cap(wanted: int) -> tuple[int, int]:
    """Raise the soft descriptor limit to the hard one; (connection cap, listen backlog) that fit under it.
    asyncio accepts up to `backlog` sockets per loop iteration, and a socket reaches its protocol (where
    the cap applies) two iterations later, and an evicted one is closed one iteration after that: the cap
    leaves room for four such bursts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = max(2, soft - FD_RESERVE)
    backlog = max(1, min(2048, room // 8))
    return max(1, min(wanted, room - 4 * backlog)), backlog


class RateLimitedLog:
    """log.warning at most once per `every_s`, counting what was held back."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s, self.last, self.held = every_s, -1e9, 0

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.held += 1
            return
        extra = f" ({self.held} more like it in the last {now - self.last:.0f} s)" if self.held else ""
        log.warning("%s%s", message, extra)
        self.last, self.held = now, 0


def install_accept_error_filter(loop: asyncio.AbstractEventLoop) -> None:
    """Route asyncio's 'socket.accept() out of system resource' reports through a rate-limited one-liner."""
    limited, default = RateLimitedLog(), loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if "accept()" in context.get("message", ""):
            limited(f"accept() failed: {context.get('exception')}; new connections wait (raise the descriptor "
                    "limit, or lower --max-connections)")
            return
        if default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def guarded_protocol(max_connections: int, header_timeout_s: float) -> type[H11Protocol]:
    """An H11Protocol subclass enforcing the cap and the header deadline (pass as uvicorn's `http=`)."""
    refused_log = RateLimitedLog()

    class GuardedH11Protocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _idle_since: float | None = None  # set while waiting for a request's first byte

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections and not self._evict_idle():
                refused_log(f"connection refused: {max_connections} connections open (--max-connections)")
                err = ApiError(503, f"server has {max_connections} connections open; retry shortly",
                               "too_many_connections", headers={"Retry-After": "2"})
                transport.write(raw_error(err))
                transport.close()
                return
            self._await_request()

        def _evict_idle(self) -> bool:
            idle = [c for c in self.connections if c is not self and getattr(c, "_idle_since", None) is not None]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c._idle_since)
            oldest._close_quietly()
            return True

        def _await_request(self) -> None:
            self._cancel_timer()
            self._idle_since, self._partial = time.monotonic(), False
            self._timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _cancel_timer(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _close_quietly(self) -> None:
            self._cancel_timer()
            self._idle_since = None
            self.connections.discard(self)
            if not self.transport.is_closing():
                self.transport.close()

        def _headers_too_slow(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self._partial:  # a request started but its headers never finished
                err = ApiError(408, f"request headers not received within {header_timeout_s:g} s",
                               "request_timeout")
                self.transport.write(raw_error(err))
            self._close_quietly()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            self._idle_since, self._partial = None, True
            super().data_received(data)
            if self.cycle is not cycle:  # the headers are in: the body's deadline is the middleware's
                self._cancel_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._await_request()  # kept alive: the next request's headers get the same deadline

        def connection_lost(self, exc) -> None:
            self._cancel_timer()
            self._idle_since = None
            super().connection_lost(exc)

    return GuardedH11Protocol
