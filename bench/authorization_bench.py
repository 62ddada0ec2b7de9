"""Roaming authorization, full stack, vs the lxml echo limit measured in the same run.

gembus on gunicorn (2 workers, PostgreSQL when it answers) with the demo data: ice-charging
asks AuthorizeRoaming for tnm-mobility's customer at its own EVSE, with the RFID token and a
new partnerSessionId each time. Every request pays the whole path: guard and parse,
WS-Security digest + nonce, XSD validation of request and response, the caller and EVSE
checks, the roaming agreement (SRV 1967's cache), the stored customer contract, and the
decision recorded in the database together with the nonce. The limit is the lxml
parse-and-serialise WSGI app (bench/echo_app.py) on the same gunicorn, same clients.

Target (issue 5): >= 1,000 authorizations/s at 16 concurrent clients, p99 <= 30 ms, on
PostgreSQL. After the run the decisions in the database are counted: one per answered
request, all Authorized.
"""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from bench.http_bench import _database, _gunicorn, _load, demo_env
from tests.support.soap import envelope, wsse_header

ACTION = "urn:gembus:authorization:v1/AuthorizeRoaming"
CLIENTS = 16


def authorize_body(session: str) -> str:
    return (
        '<az:AuthorizeRoaming xmlns:az="urn:gembus:authorization:v1" '
        'xmlns:cmn="urn:gembus:common:v1"><az:operatorId>DE*ICE</az:operatorId>'
        "<az:evseId>DE*ICE*E123456*7</az:evseId><az:contractId>NL-TNM-000122045-U</az:contractId>"
        "<az:token><cmn:instance>4F2A19C3</cmn:instance><cmn:tokenType>rfid</cmn:tokenType>"
        "<cmn:tokenSubType>mifareCls</cmn:tokenSubType></az:token>"
        f"<az:partnerSessionId>{session}</az:partnerSessionId></az:AuthorizeRoaming>"
    )


def _bodies(count: int) -> list[bytes]:
    run = uuid.uuid4().hex[:8]
    return [
        envelope(
            authorize_body(f"bench-{run}-{i}"),
            wsse_header("ice-charging", "demo-operator-password"),
        )
        for i in range(count)
    ]


def _decisions(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        total, authorized = connection.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE result = 'Authorized') "
                "FROM authorization_decision"
            )
            if engine.dialect.name == "postgresql"
            else text(
                "SELECT count(*), sum(CASE WHEN result = 'Authorized' THEN 1 ELSE 0 END) "
                "FROM authorization_decision"
            )
        ).one()
    engine.dispose()
    return int(total), int(authorized or 0)


def run(seconds: float, clients: int = CLIENTS) -> dict[str, object]:
    count = int(seconds * 3000)
    with _database() as (url, kind):
        env = demo_env(url)
        with _gunicorn("bench.echo_app:app", env) as port:  # the same messages, parsed and echoed
            echo = _load(port, "/echo", ACTION, _bodies(count), seconds, clients)
        bodies = _bodies(count + 400)
        with _gunicorn("gembus.wsgi:app", env) as port:
            _load(port, "/services/authorization", ACTION, bodies[:400], 1.0, clients)  # warm up
            before = _decisions(url)
            figures = _load(port, "/services/authorization", ACTION, bodies[400:], seconds, clients)
        total, authorized = (a - b for a, b in zip(_decisions(url), before, strict=True))
    ratio = figures["rps"] / echo["rps"]
    print(
        f"roaming authorization through gunicorn (2 workers, {kind}), {clients} clients, {seconds:.0f} s"
    )
    print(
        f"  limit: lxml parse-and-serialise WSGI app  {echo['rps']:>8} req/s  p50 {echo['p50_ms']} ms  "
        f"p99 {echo['p99_ms']} ms"
    )
    print(
        f"  gembus AuthorizeRoaming (stored list)     {figures['rps']:>8} req/s  p50 {figures['p50_ms']} ms  "
        f"p99 {figures['p99_ms']} ms  errors {figures['errors']}  ({ratio:.2f}x the limit)"
    )
    print(
        f"  decisions recorded during the run: {total} ({authorized} Authorized) for "
        f"{figures['requests']} answers; target >= 1,000/s, p99 <= 30 ms"
    )
    return {
        "database": kind,
        "clients": clients,
        "seconds": seconds,
        "limit_echo": echo,
        "authorize_roaming": {**figures, "ratio_to_limit": round(ratio, 3)},
        "decisions_recorded": total,
        "decisions_authorized": authorized,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    options = parser.parse_args()
    run(options.seconds, options.clients)
