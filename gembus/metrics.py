"""Prometheus metrics: requests, faults and latency per family and operation.

Under gunicorn every worker is a process, so the registry runs in prometheus-client's
multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it); /metrics
then aggregates all workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "gembus_soap_requests_total", "SOAP requests handled", ["family", "operation", "outcome"]
)
FAULTS = Counter("gembus_soap_faults_total", "SOAP faults sent", ["family", "operation", "code"])
LATENCY = Histogram(
    "gembus_soap_request_seconds",
    "Time from request read to response ready",
    ["family", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def observe(family: str, operation: str, fault_code: str | None, seconds: float) -> None:
    outcome = "fault" if fault_code else "ok"
    REQUESTS.labels(family, operation, outcome).inc()
    LATENCY.labels(family, operation).observe(seconds)
    if fault_code:
        FAULTS.labels(family, operation, fault_code).inc()


def render() -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
