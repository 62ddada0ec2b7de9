"""Search EVSE end to end at 1,000,000 EVSEs (targets: p50 <= 15 ms, >= 300 searches/s at 8
concurrent clients).

SearchEvse (10 km radius around a city + a CCS plug filter, pages of 10) over HTTP through
gunicorn (2 workers, PostgreSQL), every request with a fresh UsernameToken (digest + nonce
insert) and XSD validation in and out, against the lxml parse-and-serialise echo on the same
gunicorn in the same run. The dataset (``gembus demo generate``) is kept in the database
``gembus_bench_evse`` between runs; ``--regenerate`` rebuilds it.
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import time

from sqlalchemy import create_engine, text

from bench.http_bench import REPO, _gunicorn, _load
from gembus.evse_dataset import CITIES
from tests.support.databases import kept_postgres_database
from tests.support.soap import envelope, wsse_header

DATABASE = "gembus_bench_evse"
ACTION = "urn:gembus:evse-search:v1/SearchEvse"
#: Fixed, so the demo partners' sealed passwords stay readable in the kept database.
KEY = base64.urlsafe_b64encode(b"gembus-bench-evse-search-key-32b").decode()


def _database(count: int, regenerate: bool) -> str:
    name = DATABASE if count == 1_000_000 else f"{DATABASE}_{count}"
    return kept_postgres_database(name, regenerate=regenerate)


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "gembus.cli", *args],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    )


def _prepare(url: str, env: dict[str, str], count: int) -> None:
    _cli(env, "db", "upgrade")
    engine = create_engine(url)
    with engine.connect() as connection:
        have = connection.execute(text("SELECT count(*) FROM evse")).scalar_one()
    engine.dispose()
    if have < count:
        print(f"  generating {count:,} EVSEs (kept in {DATABASE} for the next runs) ...")
        started = time.perf_counter()
        with create_engine(url).begin() as connection:
            connection.execute(text("TRUNCATE evse, evse_document, evse_status, evse_operator"))
        _cli(env, "demo", "generate", "--evses", str(count))
        print(f"  generated in {time.perf_counter() - started:.0f} s")
    _cli(env, "demo", "load")


def _body(rnd: random.Random) -> bytes:
    _city, _cc, lat, lon, _pop = rnd.choices(CITIES, weights=[c[4] for c in CITIES])[0]
    lat, lon = lat + rnd.uniform(-0.05, 0.05), lon + rnd.uniform(-0.05, 0.05)
    search = (
        '<s:SearchEvse xmlns:s="urn:gembus:evse-search:v1" xmlns:cmn="urn:gembus:common:v1">'
        "<s:technical><s:plugs><s:plug>CCS Combo 2 Plug (Cable Attached)</s:plug></s:plugs>"
        f"</s:technical><s:proximity><s:center><cmn:latitude>{lat:.6f}</cmn:latitude>"
        f"<cmn:longitude>{lon:.6f}</cmn:longitude></s:center><s:radiusKm>10</s:radiusKm>"
        "</s:proximity><s:paging><cmn:page>1</cmn:page><cmn:pageSize>10</cmn:pageSize>"
        "</s:paging></s:SearchEvse>"
    )
    return envelope(search, wsse_header("navi-search", "demo-search-password"))


def run(
    seconds: float, clients: int, count: int = 1_000_000, regenerate: bool = False
) -> dict[str, object]:
    url = _database(count, regenerate)
    env = {
        **os.environ,
        "GEMBUS_DATABASE_URL": url,
        "GEMBUS_SECRET_KEY": KEY,
        "GEMBUS_LOG_LEVEL": "WARNING",
    }
    _prepare(url, env, count)
    rnd = random.Random(6)
    bodies = [_body(rnd) for _ in range(int(seconds * 600) + 400)]
    alone = [_body(rnd) for _ in range(int(seconds * 300))]  # fresh nonces for the 1-client run
    with _gunicorn("bench.echo_app:app", env) as port:
        echo = _load(port, "/echo", ACTION, bodies, seconds, clients)
    with _gunicorn("gembus.wsgi:app", env) as port:
        _load(port, "/services/evse_search", ACTION, bodies[:400], 2.0, clients)  # warm up
        figures = _load(port, "/services/evse_search", ACTION, bodies[400:], seconds, clients)
        one = _load(port, "/services/evse_search", ACTION, alone, seconds / 2, 1)
    ratio = figures["rps"] / echo["rps"]
    print(
        f"search EVSE: {count:,} EVSEs on postgresql, 10 km + CCS plug, pages of 10, "
        f"gunicorn 2 workers, {clients} clients, {seconds:.0f} s"
    )
    print(
        f"  limit: lxml parse-and-serialise WSGI app  {echo['rps']:>8} req/s  "
        f"p50 {echo['p50_ms']} ms  p99 {echo['p99_ms']} ms"
    )
    print(
        f"  gembus SearchEvse                        {figures['rps']:>8} req/s  "
        f"p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  errors {figures['errors']}  "
        f"({ratio:.2f}x the limit; target >= 300/s)"
    )
    print(
        f"  gembus SearchEvse, one client            {one['rps']:>8} req/s  "
        f"p50 {one['p50_ms']} ms  p99 {one['p99_ms']} ms  errors {one['errors']}  (target p50 <= 15 ms; "
        f"at {clients} closed-loop clients the mean latency is {clients} / throughput, "
        f"{1000 * clients / 300:.0f} ms at 300/s)"
    )
    return {
        "evses": count,
        "clients": clients,
        "seconds": seconds,
        "limit_echo": echo,
        "gembus": {**figures, "ratio_to_limit": round(ratio, 3)},
        "gembus_one_client": one,
    }
