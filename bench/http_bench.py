"""End-to-end figures: GetPartner through gunicorn vs the lxml echo app on the same gunicorn."""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from cryptography.fernet import Fernet

from tests.support.databases import fresh_postgres_database
from tests.support.soap import ACTION, envelope, get_partner, wsse_header

REPO = Path(__file__).resolve().parent.parent


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _database() -> Iterator[tuple[str, str]]:
    try:
        with fresh_postgres_database() as url:
            yield url, "postgresql"
    except BaseException as exc:  # pytest's skip/fail outcome when PostgreSQL is absent
        if type(exc).__name__ not in ("Skipped", "Failed"):
            raise
        with TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", "sqlite"


@contextmanager
def _gunicorn(app: str, env: dict[str, str]) -> Iterator[int]:
    port = _port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "gembus" / "gunicorn_conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "/dev/null",
            app,
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/health")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def _load(port: int, bodies: list[bytes], seconds: float, clients: int) -> dict[str, float]:
    """Closed-loop load: each client sends its next body as soon as the last answer arrived."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    chunks = [bodies[i::clients] for i in range(clients)]

    def worker(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local, failed = [], 0
        for body in mine:
            if time.monotonic() > stop:
                break
            started = time.perf_counter()
            conn.request(
                "POST",
                "/services/marketplace",
                body,
                {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
            )
            response = conn.getresponse()
            response.read()
            local.append(time.perf_counter() - started)
            failed += response.status != 200
        with lock:
            latencies.extend(local)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": round(len(ordered) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1e3, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1e3, 2),
        "errors": errors[0],
    }


def run(seconds: float, clients: int) -> dict[str, object]:
    bodies = [
        envelope(get_partner(), wsse_header("gembus-admin", "demo-admin-password"))
        for _ in range(int(seconds * 1500))
    ]
    with _database() as (url, kind):
        env = {
            **os.environ,
            "GEMBUS_DATABASE_URL": url,
            "GEMBUS_SECRET_KEY": Fernet.generate_key().decode(),
            "GEMBUS_LOG_LEVEL": "WARNING",
        }
        for command in (["db", "upgrade"], ["demo", "load"]):
            subprocess.run(
                [sys.executable, "-m", "gembus.cli", *command],
                env=env,
                cwd=REPO,
                check=True,
                capture_output=True,
            )
        with _gunicorn("bench.echo_app:app", env) as port:
            echo = _load(port, bodies, seconds, clients)
        with _gunicorn("gembus.wsgi:app", env) as port:
            gembus = _load(port, bodies, seconds, clients)
    print(
        f"GetPartner end to end, {clients} clients, {seconds:.0f} s each, gunicorn 2 workers, {kind} "
        f"({len(bodies[0])} B request)"
    )
    print(
        f"  limit: lxml echo  {echo['rps']:>8} req/s  p50 {echo['p50_ms']} ms  p99 {echo['p99_ms']} ms"
    )
    print(
        f"  gembus GetPartner {gembus['rps']:>8} req/s  p50 {gembus['p50_ms']} ms  p99 {gembus['p99_ms']} ms  "
        f"errors {gembus['errors']}  ({gembus['rps'] / echo['rps']:.2f}x of the limit's throughput)"
    )
    print(
        "  gembus per request: guard, UsernameToken digest + nonce insert, partner load, XSD validation "
        "in and out, spyne binding, one SQL read"
    )
    return {
        "database": kind,
        "clients": clients,
        "seconds": seconds,
        "echo": echo,
        "gembus": gembus,
        "throughput_ratio": round(gembus["rps"] / echo["rps"], 3),
    }
