"""Prometheus metrics, in a registry per app so several apps can live in one process."""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def version() -> str:
    try:
        return metadata.version("streetwatch")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, db_backend: str = "unknown") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, _resident_memory_bytes...
        PlatformCollector(registry=r)  # python_info
        build = Gauge(
            "streetwatch_build_info",
            "Always 1; the labels say what runs",
            ["version", "python", "db_backend"],
            registry=r,
        )
        build.labels(version(), platform.python_version(), db_backend).set(1)
        self.requests = Counter(
            "streetwatch_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "streetwatch_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=r,
        )
        self.reports = Counter(
            "streetwatch_reports",
            "Reports taken in, by outcome (created, merged, replayed, updated)",
            ["outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "streetwatch_transitions", "Case status changes", ["to"], registry=r
        )
        self.webhook_attempts = Counter(
            "streetwatch_webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, retry, failed, disabled, stale)",
            ["outcome"],
            registry=r,
        )

        self.overdue = Gauge(
            "streetwatch_cases_overdue",
            "Dispatched cases past their deadline now, per department",
            ["department"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
