"""Pure ASGI middleware guarding every route: a request id on every response and in every 5xx log line,
unhandled exceptions answered in OpenAI's error shape, the API key, and the body's read deadline."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid

from .errors import ApiError

log = logging.getLogger("kdasr.serve")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # probes: an orchestrator has no key


async def send_error(send, err: ApiError, close: bool = False, request_id: str | None = None) -> None:
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestIdMiddleware:
    """Outermost. Gives each request an id (X-Request-Id on the reply, scope["state"]["request_id"]),
    logs every 5xx with it and the reason, and answers an unhandled exception with a JSON 500 naming
    the id (the traceback goes to the log, never to the client)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        status, body = [0], bytearray()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            elif status[0] >= 500 and len(body) < 2000:
                body.extend(message.get("body", b"")[:2000])
            await send(message)

        where = f"{scope.get('method')} {scope.get('path')}"
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as e:  # noqa: BLE001 - the last line of defence: a JSON 500 and one log record
            log.error("request %s %s: 500 unhandled %s: %s", rid, where, type(e).__name__, e, exc_info=True)
            if status[0] == 0:
                err = ApiError(500, f"internal error (request id {rid}); the server log has the details",
                               "internal_error")
                await send_error(send, err, close=True, request_id=rid)
            return
        if status[0] >= 500 and scope.get("path") not in OPEN_PATHS:  # a probe's 503 is its answer, not an error
            log.warning("request %s %s: %d %s", rid, where, status[0], _reason(bytes(body)))


def _reason(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


class ApiKeyMiddleware:
    """`Authorization: Bearer KEY` on every route but the probes (OpenAI's scheme: the official client sends
    its api_key this way). Compared in constant time; 401 in OpenAI's shape. The body of a refused upload
    is read and dropped (up to `drain_bytes`) first, so the client sees the 401 rather than a reset."""

    def __init__(self, app, key: str, drain_bytes: int) -> None:
        self.app, self.key, self.drain_bytes = app, key.encode(), drain_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        if not given:
            message = ("no API key provided: send it in an Authorization header using Bearer auth "
                       "(Authorization: Bearer YOUR_KEY)")
        else:
            message = "incorrect API key provided"
        dropped = 0
        while scope["method"] in ("POST", "PUT") and dropped <= self.drain_bytes:
            msg = await receive()
            dropped += len(msg.get("body", b""))
            if msg["type"] != "http.request" or not msg.get("more_body"):
                break
        await send_error(send, ApiError(401, message, "invalid_api_key", headers={"WWW-Authenticate": "Bearer"}),
                         close=True)


class ReadTimeoutMiddleware:
    """The whole request body must arrive within `timeout_s` of the headers, else 408 and the connection is
    closed (a client trickling 1 byte/s no longer holds a connection and a request slot for minutes). The
    app sees a disconnect; anything it answers after that is dropped."""

    def __init__(self, app, timeout_s: float) -> None:
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        state = {"body_done": False, "timed_out": False, "started": False}

        async def receive_by_deadline():
            if state["body_done"]:
                return await receive()  # after the body: waits for a disconnect (cancellation watches it)
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                state["timed_out"] = state["body_done"] = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body"):
                state["body_done"] = True
            return message

        async def send_unless_timed_out(message):
            if state["timed_out"]:
                return
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, receive_by_deadline, send_unless_timed_out)
        except Exception:
            if not state["timed_out"]:
                raise
        if state["timed_out"] and not state["started"]:
            err = ApiError(408, f"request body not received within {self.timeout_s:g} s", "request_timeout")
            await send_error(send, err, close=True)
