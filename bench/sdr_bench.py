"""SDR ingest: SubmitSdrs in batches of 500 through gunicorn (2 workers), WS-Security and XSD
validation included, each record durable with its outbox rows before the answer.

Scenario: ICE Charging submits plausible charging SDRs for customers of The New Motion, which
takes push delivery (one ReceiveSdrs outbox row per batch); a second run adds an SdrAvailable
subscriber (one Notify outbox row per record). Every request carries 500 new records and a
fresh UsernameToken, built before the clock starts.

The limit measured in the same run: the same 500-record envelopes posted to the lxml
parse-and-serialise app (bench/echo_app.py) on the same gunicorn -- what HTTP plus one parse
and one serialisation of these bodies cost on this machine. Target (issue 5): >= 5,000
SDRs/s on PostgreSQL.

``python -m bench.sdr_bench [seconds]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet

from bench.http_bench import REPO, _database, _gunicorn, _load
from tests.support.sdr import SUBMIT_ACTION, record, submit_body
from tests.support.soap import envelope, wsse_header

BATCH = 500
CLIENTS = 4
TARGET = 5000


def _bodies(count: int, prefix: str) -> list[bytes]:
    """``count`` SubmitSdrs envelopes of BATCH distinct records each."""
    start = datetime.now(UTC) - timedelta(days=4)
    template = record("DEICE{id}", start=start)
    bodies = []
    for n in range(count):
        records = [template.replace("{id}", f"{prefix}{n:06d}{i:04d}") for i in range(BATCH)]
        header = wsse_header("ice-charging", "demo-operator-password")
        bodies.append(envelope(submit_body(records), header))
    return bodies


def _prepare(env: dict[str, str]) -> None:
    """Demo partners, an open roaming agreement, push delivery for tnm-mobility."""
    for command in (["db", "upgrade"], ["demo", "load"]):
        subprocess.run(
            [sys.executable, "-m", "gembus.cli", *command],
            env=env, cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
    from domain.clearing.sdr import DeliveryMode
    from domain.clearing.sdr_delivery import set_delivery_mode
    from domain.marketplace import catalogue, contracts
    from domain.marketplace.model import (
        InterfaceRef,
        LifecycleState,
        ServiceCategory,
        ServiceData,
        Validity,
    )
    from gembus.bootstrap import build
    from gembus.settings import Settings
    from tests.support.marketplace import AcceptingInspector

    gembus = build(Settings.from_environ(env))
    with gembus.uow() as uow:
        ice, tnm = uow.partners.get("ice-charging"), uow.partners.get("tnm-mobility")
        assert ice is not None and tnm is not None
        validity = Validity(datetime(2020, 1, 1, tzinfo=UTC), datetime.now(UTC) - timedelta(days=3))
        contracts.create_roaming_agreement(uow, ice, "DE*ICE", "NL-TNM", validity)
        data = ServiceData(
            "TNM SDR receiver", ServiceCategory.CLEARING_HOUSE, InterfaceRef("sdr_receiver", 1),
            "http://127.0.0.1:9/sdr-receiver",
        )  # fmt: skip
        service = catalogue.register_service(uow, AcceptingInspector(), tnm, None, data)
        catalogue.change_lifecycle(uow, tnm, service.service_id, LifecycleState.PUBLISHED)
        set_delivery_mode(uow, "tnm-mobility", DeliveryMode.PUSH, "bench", datetime.now(UTC))
        uow.commit()
    gembus.engine.dispose()


def _subscribe(env: dict[str, str]) -> None:
    from domain.pubsub import Topic, subscribe
    from gembus.bootstrap import build
    from gembus.settings import Settings

    gembus = build(Settings.from_environ(env))
    with gembus.uow() as uow:
        tnm = uow.partners.get("tnm-mobility")
        assert tnm is not None
        url = "http://127.0.0.1:9/notify"
        subscribe(uow, tnm, Topic.SDR_AVAILABLE, url, None, datetime.now(UTC))
        uow.commit()
    gembus.engine.dispose()


def _stored(env: dict[str, str]) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["GEMBUS_DATABASE_URL"])
    with engine.connect() as connection:
        sdrs = connection.execute(text("SELECT count(*) FROM sdr")).scalar_one()
        rows = connection.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    engine.dispose()
    return int(sdrs), int(rows)


def _rate(figures: dict[str, Any]) -> float:
    return float(figures["rps"]) * BATCH


def run(seconds: float = 10.0) -> dict[str, object]:
    requests = max(8, int(seconds * 20))
    results: dict[str, object] = {}
    with _database() as (url, kind):
        env = {
            **os.environ,
            "GEMBUS_DATABASE_URL": url,
            "GEMBUS_SECRET_KEY": Fernet.generate_key().decode(),
            "GEMBUS_LOG_LEVEL": "WARNING",
        }
        _prepare(env)
        plain, subscribed = _bodies(requests, "1"), _bodies(requests, "2")
        warm = _bodies(CLIENTS * 2, "9")
        with _gunicorn("bench.echo_app:app", env) as port:
            echo = _load(port, "/echo", SUBMIT_ACTION, plain * 20, seconds, CLIENTS)
        with _gunicorn("gembus.wsgi:app", env) as port:
            _load(port, "/services/sdr", SUBMIT_ACTION, warm, 30.0, CLIENTS)
            before = _stored(env)
            push = _load(port, "/services/sdr", SUBMIT_ACTION, plain, seconds, CLIENTS)
            after = _stored(env)
            _subscribe(env)
            notify = _load(port, "/services/sdr", SUBMIT_ACTION, subscribed, seconds, CLIENTS)
            final = _stored(env)
    limit = _rate(echo)
    for name, figures, stored in (
        ("push delivery (1 outbox row per batch)", push, (after[0] - before[0], after[1] - before[1])),
        ("push + SdrAvailable subscriber (+1 row per SDR)", notify, (final[0] - after[0], final[1] - after[1])),
    ):  # fmt: skip
        rate = _rate(figures)
        results[name] = {
            **figures,
            "sdrs_per_s": round(rate),
            "sdrs_stored": stored[0],
            "outbox_rows": stored[1],
            "ratio_to_limit": round(rate / limit, 3),
        }
        print(
            f"  gembus SubmitSdrs, {name}: {rate:>8,.0f} SDRs/s  p50 {figures['p50_ms']} ms  "
            f"p99 {figures['p99_ms']} ms  errors {figures['errors']}  stored {stored[0]} SDRs, "
            f"{stored[1]} outbox rows  ({rate / limit:.2f}x the limit; target >= {TARGET:,}/s)"
        )
    print(
        f"  limit: lxml parse-and-serialise of the same bodies {limit:>8,.0f} SDRs/s "
        f"(gunicorn 2 workers, {CLIENTS} clients, {kind}, batches of {BATCH})"
    )
    return {
        "database": kind,
        "batch": BATCH,
        "clients": CLIENTS,
        "seconds": seconds,
        "limit_echo_sdrs_per_s": round(limit),
        "target_sdrs_per_s": TARGET,
        "gembus": results,
    }


if __name__ == "__main__":
    print(run(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
