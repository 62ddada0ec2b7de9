"""Outbox drain rate: 2 `gembus worker` processes delivering N rows to a fast local receiver.

The receiver is a raw WSGI app (no SOAP stack: it finds the eventId with a byte search and
answers a canonical NotifyResponse ``received``) under gunicorn with keep-alive threads. The
limit measured in the same run is that receiver's own throughput when 2 client processes with
the workers' HTTP stack (one urllib3 pool per thread, same threads) post the same
envelopes to it directly, with no database at all. Target: >= 2,000 deliveries/s.

``python -c "from bench.outbox_bench import run; run()"`` (or ``run(n=5000)``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
from cryptography.fernet import Fernet
from sqlalchemy import text

from bench.http_bench import REPO, _database, _port
from bus.delivery import envelope, http_pool
from domain.identifiers import EvseId
from domain.pubsub import EvseStatusChanged, Topic, notify_body, operator_of, publish

NS = b"urn:gembus:notification:v1"
_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '"urn:gembus:notification:v1/Notify"',
}
WORKERS = 2
THREADS = 4


def receiver(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer ``received`` for the eventId of any Notify (gunicorn bench.outbox_bench:receiver)."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start = body.find(b"eventId>") + len(b"eventId>")
    event_id = body[start : body.find(b"<", start)]
    answer = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<n:NotifyResponse xmlns:n="' + NS + b'"><n:eventId>' + event_id + b"</n:eventId>"
        b"<n:receipt>received</n:receipt></n:NotifyResponse></s:Body></s:Envelope>"
    )
    start_response(
        "200 OK",
        [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(answer)))],
    )
    return [answer]


@contextmanager
def _receiver() -> Iterator[str]:
    port = _port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "4",
         "--worker-class", "gthread", "--threads", "4", "--keep-alive", "30",
         "--access-logfile", "/dev/null", "bench.outbox_bench:receiver"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/notify"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or still booting
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _post_many(args: tuple[str, int, int]) -> int:
    """One client process: ``threads`` threads, each with its own pooled Session."""
    url, count, threads = args
    body = envelope(notify_body("E1.SUB-1", "SUB-1", Topic.EVSE_STATUS_CHANGED, _NOW, _EVENT))

    def work(n: int) -> None:
        pool = http_pool()
        for _ in range(n):
            answer = pool.request("POST", url, body=body, headers=_HEADERS, retries=False)
            assert answer.status == 200, answer.status

    pool = [threading.Thread(target=work, args=(count // threads,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return count // threads * threads


_NOW = datetime.now(UTC)
_EVSE = EvseId.parse("DE*ICE*E1*1")
_EVENT = EvseStatusChanged(_EVSE, operator_of(_EVSE), "available", "available")


def _direct_limit(url: str, n: int) -> float:
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        started = time.perf_counter()
        sent = sum(pool.map(_post_many, [(url, n // WORKERS, THREADS)] * WORKERS))
        return sent / (time.perf_counter() - started)


def _prepare(database_url: str, url: str) -> Any:
    from domain.pubsub import subscribe
    from gembus.bootstrap import build
    from gembus.demo import load
    from gembus.settings import Settings
    from persistence.migrate import upgrade

    gembus = build(Settings(database_url=database_url, secret_key=Fernet.generate_key().decode(),
                            log_level="WARNING"))  # fmt: skip
    upgrade(gembus.engine)
    load(gembus.uow, gembus.vault)
    with gembus.uow() as uow:
        tnm = uow.partners.get("tnm-mobility")
        assert tnm is not None
        subscribe(uow, tnm, Topic.EVSE_STATUS_CHANGED, url, None, datetime.now(UTC))
        uow.commit()
    return gembus


def _enqueue(gembus: Any, n: int) -> None:
    """n deliveries through the domain publish(), committed at once."""
    with gembus.uow() as uow:
        for _ in range(n):
            publish(uow, Topic.EVSE_STATUS_CHANGED, _EVENT)
        uow.commit()


def _delivered(gembus: Any) -> int:
    with gembus.engine.connect() as connection:
        query = text("SELECT count(*) FROM outbox WHERE status = 'delivered'")
        return int(connection.execute(query).scalar_one())


def run(n: int = 5000) -> dict[str, object]:
    with _database() as (database_url, kind), _receiver() as url:
        limit = _direct_limit(url, n)
        gembus = _prepare(database_url, url)
        threads = THREADS if kind == "postgresql" else 1
        workers = WORKERS if kind == "postgresql" else 1
        env = {**os.environ, "GEMBUS_DATABASE_URL": database_url, "GEMBUS_OUTBOX_POLL_S": "0.02",
               "GEMBUS_LOG_LEVEL": "WARNING", "GEMBUS_SECRET_KEY": gembus.settings.secret_key}  # fmt: skip
        command = [sys.executable, "-m", "gembus.cli", "worker"]
        processes = [
            subprocess.Popen(
                [*command, "--concurrency", str(threads), "--batch", "100"],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            time.sleep(3)  # imports and the first idle poll; not part of the figure
            _enqueue(gembus, n)
            started = time.perf_counter()
            while _delivered(gembus) < n:
                time.sleep(0.02)
            rate = n / (time.perf_counter() - started)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(30)
            gembus.engine.dispose()
    result: dict[str, object] = {
        "database": kind,
        "rows": n,
        "worker_processes": workers,
        "threads_per_worker": threads,
        "deliveries_per_s": round(rate),
        "receiver_direct_limit_per_s": round(limit),
        "ratio_to_limit": round(rate / limit, 2),
        "target_per_s": 2000,
    }
    print(
        f"outbox: {workers} workers x {threads} threads drained {n} rows on {kind} at "
        f"{rate:,.0f} deliveries/s; the receiver called directly: {limit:,.0f}/s "
        f"({rate / limit:.2f}x the limit; target >= 2,000/s)"
    )
    return result


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
