"""Prometheus metrics for `/metrics`: requests, latency, batch sizes and errors.

Each app gets its own registry, so two servers in one process (tests, Ray replicas
sharing a worker) do not collide in prometheus-client's global one.
"""

from __future__ import annotations

from .._lazy import require

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self):
        prom = require("prometheus_client", "serving metrics")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter("edgekit_requests_total", "Predict requests answered, by model and HTTP code.",
                                     ["model", "code"], registry=self.registry)
        self.latency = prom.Histogram("edgekit_request_latency_seconds",
                                      "Predict latency in the server, decoding to encoding.",
                                      ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = prom.Histogram("edgekit_batch_size", "Requests run together in one model call.",
                                         ["model"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.errors = prom.Counter("edgekit_errors_total",
                                   "Refused or failed requests, by kind (bad_request, validation, auth, too_large, "
                                   "not_found, internal).", ["kind"], registry=self.registry)
        self.bucket_requests = prom.Counter("edgekit_bucket_requests_total",
                                            "Requests run padded to each shape bucket (--shape-buckets).",
                                            ["model", "bucket"], registry=self.registry)
        self.bucket_calls = prom.Counter("edgekit_bucket_calls_total", "Model calls (batches) per shape bucket.",
                                         ["model", "bucket"], registry=self.registry)
        self.inflight = prom.Gauge("edgekit_inflight_requests", "Predict requests being handled now.",
                                   registry=self.registry)

    def bucket(self, model: str, bucket: str, size: int) -> None:
        """One model call of ``size`` requests padded to ``bucket`` (e.g. sequence_32)."""
        self.bucket_requests.labels(model, bucket).inc(size)
        self.bucket_calls.labels(model, bucket).inc()

    def reject(self, status: int, kind: str) -> None:
        self.errors.labels(kind).inc()

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
