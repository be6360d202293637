"""Server settings in one frozen dataclass, built once by `kdasr serve` and passed in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServeConfig:
    model_name: str  # the id clients send as `model` and `GET /v1/models` lists
    max_batch: int = 8  # requests decoded together; 1 turns micro-batching off
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for company
    max_queue: int = 64  # requests waiting beyond this get 503 + Retry-After
    max_upload_mb: float = 25.0  # the OpenAI audio API's own limit
    max_audio_seconds: float = 600.0  # longer audio gets 413 (it is segmented at pauses below this)
    request_timeout_s: float = 60.0  # queue wait + decode, else 504
    max_beam: int = 16  # beam/nbest above this are refused (cost grows with beam)
    retry_after_s: int = 2  # told to clients on 503
    release_memory: bool = True  # give a long file's peak memory back after it (serve/memory.py)
    # required as `Authorization: Bearer KEY` on every route but the probes; kept out of repr()
    api_key: str | None = field(default=None, repr=False)
    docs: bool | None = None  # /docs and /openapi.json; None: on without a key, off with one
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none by default
    max_connections: int = 1000  # open connections; beyond it idle ones are dropped, then new ones refused
    header_timeout_s: float = 10.0  # a request's headers must arrive within this, else 408
    body_timeout_s: float = 60.0  # ... and its body within this after the headers, else 408

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < 1 or self.max_beam < 1:
            raise ValueError("max_batch, max_queue and max_beam must be at least 1")
        if self.max_wait_ms < 0 or self.max_upload_mb <= 0 or self.max_audio_seconds <= 0:
            raise ValueError("max_wait_ms must be >= 0; max_upload_mb and max_audio_seconds above 0")
        for name in ("request_timeout_s", "header_timeout_s", "body_timeout_s", "max_upload_mb",
                     "max_audio_seconds", "max_wait_ms"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        if self.request_timeout_s <= 0 or self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("request_timeout_s, header_timeout_s and body_timeout_s must be above 0")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty")

    @property
    def docs_on(self) -> bool:
        return self.docs if self.docs is not None else self.api_key is None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
