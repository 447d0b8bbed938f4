"""Prometheus metrics of one server, on a registry of its own (``GET /metrics``, text format)."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Request counts by endpoint and HTTP status, request latency, rows per model run, requests in flight.

    Args:
        model: the served model's name (a label on every series).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self._requests = Counter("disttorch_serve_requests", "HTTP requests by endpoint and status",
                                 ["model", "endpoint", "status"], registry=self.registry)
        self._latency = Histogram("disttorch_serve_request_duration_seconds", "Time from request to response, "
                                  "inference requests", ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._batch = Histogram("disttorch_serve_batch_size", "Rows per model run (1 request or a dynamic batch)",
                                ["model"], buckets=_BATCH_BUCKETS, registry=self.registry)
        self.inflight = Gauge("disttorch_serve_inflight_requests", "Inference requests being handled",
                              ["model"], registry=self.registry).labels(model)

    def request(self, endpoint: str, status: int, seconds: float | None = None) -> None:
        """Count one answered request (and its latency, for inference requests)."""
        self._requests.labels(self.model, endpoint, str(status)).inc()
        if seconds is not None:
            self._latency.labels(self.model).observe(seconds)

    def batch(self, rows: int) -> None:
        """Record one model run of ``rows`` rows."""
        self._batch.labels(self.model).observe(rows)

    def render(self) -> tuple:
        """``(body, content_type)`` of the Prometheus text exposition."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
