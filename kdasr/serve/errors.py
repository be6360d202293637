"""HTTP errors as one typed exception, rendered in the OpenAI error shape
`{"error": {"message", "type", "param", "code"}}` so the official client reports them as it would OpenAI's."""

from __future__ import annotations

from dataclasses import dataclass, field

TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 503: "server_error", 504: "server_error", 500: "server_error"}


@dataclass
class ApiError(Exception):
    status: int
    message: str
    code: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        kind = TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def overloaded(message: str, retry_after_s: int) -> ApiError:
    return ApiError(503, message, "overloaded", headers={"Retry-After": str(retry_after_s)})


class WarmUpFailed(Exception):
    """The warm-up decode raised: the server stopped instead of staying unready for ever."""
