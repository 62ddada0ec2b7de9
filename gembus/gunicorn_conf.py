"""gunicorn configuration for gembus (``gembus serve`` uses it; so can any deployment).

Limits that gunicorn has no setting for (body size, XML shape) are enforced by the guard.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from gembus.settings import Settings

_settings = Settings.from_environ()

bind = os.environ.get("GEMBUS_BIND", _settings.bind)
workers = _settings.workers
worker_class = "sync"
timeout = _settings.worker_timeout_s
graceful_timeout = 10
keepalive = 5
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms msg=%({x-gembus-message-id}o)s'

# Prometheus multiprocess mode: every worker writes its samples to this folder and /metrics
# aggregates them. It must be set before any worker imports prometheus_client.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="gembus-metrics-")
)


def on_starting(server: Any) -> None:
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
