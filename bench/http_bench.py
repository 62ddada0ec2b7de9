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
def _gunicorn(app: str, env: dict[str, str], *extra: str) -> Iterator[int]:
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
            *extra,
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


def demo_env(url: str, **settings: str) -> dict[str, str]:
    """The environment of a bench's gembus processes: ``url`` migrated and loaded with the demo
    partners (through the CLI, as a user would), quiet logs, a fresh secret key."""
    env = {
        **os.environ,
        "GEMBUS_DATABASE_URL": url,
        "GEMBUS_SECRET_KEY": Fernet.generate_key().decode(),
        "GEMBUS_LOG_LEVEL": "WARNING",
        **settings,
    }
    for command in (["db", "upgrade"], ["demo", "load"]):
        subprocess.run(
            [sys.executable, "-m", "gembus.cli", *command],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    return env


def _load(
    port: int, path: str, action: str, bodies: list[bytes], seconds: float, clients: int
) -> dict[str, float]:
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
                path,
                body,
                {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'},
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


def _srv1967_bodies(count: int) -> list[bytes]:
    body = (
        '<cv:ValidateServiceContract xmlns:cv="urn:gembus:contract-validation:v1" '
        'xmlns:brk="urn:gembus:brokerage:v1"><cv:requesterPartnerId>tnm-mobility</cv:requesterPartnerId>'
        "<cv:providerPartnerId>gembus-admin</cv:providerPartnerId><cv:serviceInterface>"
        "<brk:family>evse_search</brk:family><brk:version>1</brk:version></cv:serviceInterface>"
        "</cv:ValidateServiceContract>"
    )
    return [envelope(body, wsse_header("tnm-mobility", "demo-evsp-password")) for _ in range(count)]


def run(seconds: float, clients: int) -> dict[str, object]:
    count = int(seconds * 2500)
    scenarios = {
        "GetPartner": (
            "/services/marketplace",
            ACTION,
            [
                envelope(get_partner(), wsse_header("gembus-admin", "demo-admin-password"))
                for _ in range(count)
            ],
        ),
        "ValidateServiceContract (SRV 1967)": (
            "/services/contract_validation",
            "urn:gembus:contract-validation:v1/ValidateServiceContract",
            _srv1967_bodies(count),
        ),
    }
    results: dict[str, object] = {}
    with _database() as (url, kind):
        env = demo_env(url)
        echo_bodies = scenarios["GetPartner"][2] * 3  # the echo needs no fresh nonces
        with _gunicorn("bench.echo_app:app", env) as port:
            echo = _load(port, "/echo", ACTION, echo_bodies, seconds, clients)
        print(
            f"end to end through gunicorn (2 workers, {kind}), {clients} clients, {seconds:.0f} s each"
        )
        print(
            f"  limit: lxml parse-and-serialise WSGI app  {echo['rps']:>8} req/s  p50 {echo['p50_ms']} ms  "
            f"p99 {echo['p99_ms']} ms"
        )
        with _gunicorn("gembus.wsgi:app", env) as port:
            for name, (path, action, bodies) in scenarios.items():
                _load(port, path, action, bodies[:200], 1.0, clients)  # warm caches and pools
                figures = _load(port, path, action, bodies[200:], seconds, clients)
                ratio = figures["rps"] / echo["rps"]
                print(
                    f"  gembus {name:<36} {figures['rps']:>8} req/s  p50 {figures['p50_ms']} ms  "
                    f"p99 {figures['p99_ms']} ms  errors {figures['errors']}  ({ratio:.2f}x the limit)"
                )
                results[name] = {**figures, "ratio_to_limit": round(ratio, 3)}
    print(
        "  every gembus request: guard, UsernameToken digest + nonce insert, XSD validation in and out"
    )
    return {
        "database": kind,
        "clients": clients,
        "seconds": seconds,
        "limit_echo": echo,
        "gembus": results,
    }
