"""Prometheus metrics (prometheus-client), one registry per app so tests and replicas stay separate."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], int], in_decode: Callable[[], int]) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("kdasr_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.errors = Counter("kdasr_request_errors", "HTTP responses with status >= 400", ["route", "status"],
                              registry=r)
        self.latency = Histogram("kdasr_request_latency_seconds", "Time from request to response", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.audio_seconds = Counter("kdasr_audio_seconds", "Seconds of audio transcribed", registry=r)
        self.batch_size = Histogram("kdasr_batch_size", "Requests decoded together in one micro-batch",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("kdasr_batch_decode_seconds", "Time spent decoding one micro-batch",
                                       buckets=LATENCY_BUCKETS, registry=r)
        depth = Gauge("kdasr_queue_depth", "Requests waiting for a micro-batch", registry=r)
        depth.set_function(queue_depth)
        busy = Gauge("kdasr_requests_in_decode", "Requests in the batch being decoded now", registry=r)
        busy.set_function(in_decode)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
