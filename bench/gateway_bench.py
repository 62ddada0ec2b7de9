"""The gateway's cost: a routed 1 KB call vs calling the provider directly, in the same run.

The provider is the lxml parse-and-serialise WSGI app (bench/echo_app.py) on its own gunicorn;
the gateway (gembus on another gunicorn, PostgreSQL when it answers) authenticates the caller,
checks its service contract, routes by service ID, forwards the bytes and writes the
transaction log. Targets (gateway issue): added median latency <= 1.5 ms at one client;
forwarded throughput >= 0.5x the direct throughput at 8 clients (two equal hops on two cores
would give 0.5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cryptography.fernet import Fernet

from bench.http_bench import _database, _gunicorn, _load, demo_env
from domain.marketplace import catalogue, contracts
from domain.marketplace.model import (
    InterfaceRef,
    LifecycleState,
    ServiceCategory,
    ServiceData,
    Terms,
    Validity,
)
from gembus.bootstrap import build
from gembus.settings import Settings
from tests.support.marketplace import AcceptingInspector
from tests.support.soap import envelope, wsse_header

ACTION = "urn:gembus:reservation:v1/ReserveEvse"
REQUEST = (
    '<r:ReserveEvse xmlns:r="urn:gembus:reservation:v1" xmlns:cmn="urn:gembus:common:v1">'
    "<r:providerId>NL-TNM</r:providerId><r:contractId>NL-TNM-000122045-U</r:contractId>"
    "<r:token><cmn:instance>4A3B2C1D</cmn:instance><cmn:tokenType>rfid</cmn:tokenType></r:token>"
    "<r:evseId>DE*ICE*E123460*2</r:evseId><r:partnerReservationId>TNM-RES-000815</r:partnerReservationId>"
    "<r:requestedExpiry>2030-11-20T11:45:00+01:00</r:requestedExpiry></r:ReserveEvse>"
)


def _register_provider(url: str, provider_url: str) -> str:
    """ice-charging offers the echo as its reservation service; tnm-mobility signs it."""
    gembus = build(
        Settings(database_url=url, secret_key=Fernet.generate_key().decode(), log_level="WARNING")
    )
    with gembus.uow() as uow:
        ice, tnm = uow.partners.get("ice-charging"), uow.partners.get("tnm-mobility")
        assert ice is not None and tnm is not None
        data = ServiceData(
            "bench reservation",
            ServiceCategory.VALUE_ADDED,
            InterfaceRef("reservation", 1),
            provider_url,
        )
        service = catalogue.register_service(uow, AcceptingInspector(), ice, None, data)
        catalogue.change_lifecycle(uow, ice, service.service_id, LifecycleState.PUBLISHED)
        offering = catalogue.create_offering(
            uow,
            ice,
            service.service_id,
            "bench",
            None,
            Terms("EUR", Decimal("0")),
            Validity(datetime.now(UTC) - timedelta(minutes=1)),
        )
        contracts.accept_offering(uow, tnm, offering.offering_id, None, None)
        uow.commit()
    gembus.engine.dispose()
    return service.service_id


def _median_round(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median p50 (its other figures come along)."""
    return sorted(rounds, key=lambda r: r["p50_ms"])[len(rounds) // 2]


def run(seconds: float = 5.0, clients: int = 8) -> dict[str, object]:
    count = int(seconds * 3000)
    bodies = [
        envelope(REQUEST, wsse_header("tnm-mobility", "demo-evsp-password"))
        for _ in range(count * 2)
    ]
    with _database() as (url, kind):
        env = demo_env(
            url, GEMBUS_GATEWAY_VALIDATE_RESPONSES="off", GEMBUS_GATEWAY_RATE_PER_SECOND="0"
        )
        with _gunicorn("bench.echo_app:app", env) as provider_port:
            service_id = _register_provider(url, f"http://127.0.0.1:{provider_port}/reservation")
            with _gunicorn("gembus.wsgi:app", env) as gateway_port:
                path = f"/gateway/{service_id}"
                _load(
                    gateway_port, path, ACTION, bodies[:300], 1.0, clients
                )  # warm pools and caches
                # one client: rounds alternate direct and routed, so drift on the shared
                # machine (autovacuum, checkpoints) hits both alike; medians of the rounds
                rounds = [
                    (
                        _load(provider_port, "/reservation", ACTION, bodies, seconds / 3, 1),
                        _load(gateway_port, path, ACTION, chunk, seconds / 3, 1),
                    )
                    for chunk in (
                        bodies[300 + i * count // 3 : 300 + (i + 1) * count // 3] for i in range(3)
                    )
                ]
                direct_1 = _median_round([d for d, _ in rounds])
                routed_1 = _median_round([r for _, r in rounds])
                direct_n = _load(
                    provider_port, "/reservation", ACTION, bodies * 2, seconds, clients
                )
                routed_n = _load(gateway_port, path, ACTION, bodies[count:], seconds, clients)
    added = routed_1["p50_ms"] - direct_1["p50_ms"]
    ratio = routed_n["rps"] / direct_n["rps"]
    print(
        f"gateway, routed ReserveEvse ({len(bodies[0])} B) to an lxml echo provider, {kind}, 2+2 gunicorn workers"
    )
    print(
        f"  one client (median of 3 alternating rounds):  direct p50 {direct_1['p50_ms']} ms, routed p50 {routed_1['p50_ms']} ms -> added {added:.2f} ms "
        "(target <= 1.5 ms)"
    )
    print(
        f"  {clients} clients:   direct {direct_n['rps']} req/s, routed {routed_n['rps']} req/s -> {ratio:.2f}x "
        f"(target >= 0.5x)  errors {routed_n['errors']}"
    )
    print(
        "  routed: guard, UsernameToken + nonce, contract check (SRV 1967 cache), XSD validation, "
        "forward, transaction log"
    )
    return {
        "database": kind,
        "bytes": len(bodies[0]),
        "direct_1": direct_1,
        "routed_1": routed_1,
        "added_p50_ms": round(added, 3),
        "direct_n": direct_n,
        "routed_n": routed_n,
        "throughput_ratio": round(ratio, 3),
        "clients": clients,
    }
