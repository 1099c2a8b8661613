"""Prometheus series for the HTTP surface: request counts and latency by route and status."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.requests = Counter(
            "soulseer_http_requests_total", "HTTP requests served", ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "soulseer_http_request_duration_seconds", "HTTP request latency", ["route", "method"],
            registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
