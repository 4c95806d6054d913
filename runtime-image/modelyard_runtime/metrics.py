"""The server's Prometheus metrics (names from DESIGN.md §3) on a registry passed in."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DIFF_BUCKETS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0)


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        mv = ["model", "version"]
        r = self.registry
        self.requests = Counter(
            "modelyard_inference_requests", "Inference requests.", [*mv, "protocol", "code"], registry=r
        )
        self.duration = Histogram(
            "modelyard_inference_request_duration_seconds", "Request time.", mv, buckets=LATENCY_BUCKETS, registry=r
        )
        self.compute = Histogram(
            "modelyard_inference_compute_duration_seconds", "Model time.", mv, buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue = Histogram(
            "modelyard_inference_queue_duration_seconds", "Time in the batch queue.", mv, buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "modelyard_inference_batch_size", "Rows per model execution.", mv, buckets=BATCH_BUCKETS, registry=r
        )
        self.inflight = Gauge("modelyard_inference_inflight_requests", "Requests in flight.", mv, registry=r)
        self.load_duration = Histogram("modelyard_model_load_duration_seconds", "Model load time.", mv, registry=r)
        self.loaded = Gauge("modelyard_model_loaded", "1 while the version is loaded.", mv, registry=r)
        self.memory = Gauge("modelyard_model_memory_bytes", "Memory attributed to the version.", mv, registry=r)
        self.load_failures = Counter("modelyard_model_load_failures", "Failed model loads.", mv, registry=r)
        self.rejected = Counter(
            "modelyard_requests_rejected",
            "Requests refused at the server's limits (HTTP 429, gRPC RESOURCE_EXHAUSTED), by which limit.",
            ["protocol", "reason"],
            registry=r,
        )
        # shadow traffic (server.shadow): labelled with the candidate version, the one being compared
        self.shadow_comparisons = Counter(
            "modelyard_shadow_comparisons",
            "Requests copied to a shadow version, by outcome: agree, disagree, error (the shadow failed), skipped "
            "(not compared: too many in flight, or a classification request).",
            [*mv, "result"],
            registry=r,
        )
        self.shadow_abs_diff = Histogram(
            "modelyard_shadow_abs_diff", "Largest absolute difference of a shadowed request's float outputs.", mv,
            buckets=DIFF_BUCKETS, registry=r,
        )  # fmt: skip
        self.shadow_top1 = Counter(
            "modelyard_shadow_top1_rows",
            "Rows of shadowed requests whose top-1 class (or label) the shadow version agrees on, or not.",
            [*mv, "result"],
            registry=r,
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds ... (Linux's /proc): the
        # default registry has them, this registry of its own needs them added
        ProcessCollector(registry=r)

    def version(self, model: str, version: str) -> VersionMetrics:
        """The children of one loaded version, bound once (``labels()`` per request costs more than the model)."""
        return VersionMetrics(self, model, version)

    def count_request(self, model: str, version: str, protocol: str, code: str) -> None:
        """A request that reached no loaded version (unknown model, server not ready ...)."""
        self.requests.labels(model, version, protocol, code).inc()


class VersionMetrics:
    def __init__(self, metrics: ServerMetrics, model: str, version: str) -> None:
        self._metrics, self._labels = metrics, (model, version)
        self.duration = metrics.duration.labels(model, version)
        self.compute = metrics.compute.labels(model, version)
        self.queue = metrics.queue.labels(model, version)
        self.batch_size = metrics.batch_size.labels(model, version)
        self.inflight = metrics.inflight.labels(model, version)
        self._requests: dict[tuple[str, str], Any] = {}

    def request(self, protocol: str, code: str) -> Any:
        child = self._requests.get((protocol, code))
        if child is None:
            child = self._requests[(protocol, code)] = self._metrics.requests.labels(*self._labels, protocol, code)
        return child
