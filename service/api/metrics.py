"""Prometheus metrics, in a registry per app so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.result import Answer

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Request counts and latencies per route template, answers, abstentions, index size."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "groundqa_http_requests",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "groundqa_http_request_duration_seconds",
            "HTTP request latency by method and route template (streams: until the last byte).",
            ("method", "route"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "groundqa_answers",
            "Answers produced, by mode and interface.",
            ("mode", "interface"),
            registry=self.registry,
        )
        self.abstentions = Counter(
            "groundqa_abstentions",
            "Answers that abstained, by interface.",
            ("interface",),
            registry=self.registry,
        )
        self.index_chunks = Gauge(
            "groundqa_index_chunks",
            "Chunks in the index (refreshed on scrape).",
            registry=self.registry,
        )
        self.answers_running = Gauge(
            "groundqa_answers_running",
            "Answers holding an admission slot (refreshed on scrape).",
            registry=self.registry,
        )
        self.answers_waiting = Gauge(
            "groundqa_answers_waiting",
            "Answers queued for an admission slot (refreshed on scrape).",
            registry=self.registry,
        )
        self.answers_refused = Gauge(
            "groundqa_answers_refused",
            "Answers refused with 503 since start: queue full or waited too long.",
            registry=self.registry,
        )
        self.index_documents = Gauge(
            "groundqa_index_documents",
            "Documents in the index (refreshed on scrape).",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_answer(self, answer: Answer, interface: str) -> None:
        self.answers.labels(answer.mode, interface).inc()
        if answer.abstained:
            self.abstentions.labels(interface).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
