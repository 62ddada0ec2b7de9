"""Publish/subscribe end to end: Subscribe over SOAP, publish, `gembus worker` processes deliver
to a fake subscriber process (tests/fakes/subscriber.py) through PostgreSQL.

Reliability figures are reported in SECURITY.md §7's format on the terminal (``-s``) and in
the assertion messages: lost, duplicated effects, duplicate deliveries.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zeep.exceptions
from sqlalchemy import Engine, text

from domain.identifiers import EvseId
from domain.pubsub import EvseStatusChanged, Topic, operator_of, publish
from persistence.engine import make_engine, make_session_factory
from persistence.unit_of_work import SqlUnitOfWork
from tests.conftest import REPO
from tests.e2e.conftest import LiveServer, free_port, gembus_cli
from tests.fakes.subscriber import endpoint_url, start_subscriber_process, tally
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

EVSP = ("tnm-mobility", "demo-evsp-password")
OPERATOR = ("ice-charging", "demo-operator-password")


@pytest.fixture
def database(live_server: LiveServer) -> Iterator[Engine]:
    engine = make_engine(live_server.env["GEMBUS_DATABASE_URL"])
    yield engine
    engine.dispose()


def _worker_env(live_server: LiveServer) -> dict[str, str]:
    """Short backoff so a test sees several attempts; many attempts so nothing dies."""
    return {
        **live_server.env,
        "GEMBUS_OUTBOX_BACKOFF_BASE_S": "0.3",
        "GEMBUS_OUTBOX_BACKOFF_CAP_S": "1.5",
        "GEMBUS_OUTBOX_MAX_ATTEMPTS": "100",
        "GEMBUS_OUTBOX_POLL_S": "0.1",
        "GEMBUS_OUTBOX_TIMEOUT_S": "5",
        "GEMBUS_LOG_LEVEL": "ERROR",
    }


def _start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gembus.cli", "worker", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _rows(engine: Engine, keys: list[str]) -> dict[str, tuple[str, int, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT idempotency_key, status, attempts, last_error FROM outbox "
                "WHERE idempotency_key = ANY(:keys)"
            ),
            {"keys": keys},
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _wait(what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _subscribe(live_server: LiveServer, url: str) -> str:
    evsp = client(live_server.base_url, "marketplace", *EVSP)
    subscription = evsp.Subscribe(
        topic="EvseStatusChanged",
        endpointUrl=url,
        filter={"operatorIds": {"operatorId": ["DE*ICE"]}},
    )
    assert subscription.status == "active" and subscription.partnerId == "tnm-mobility"
    return str(subscription.subscriptionId)


def _unsubscribe(live_server: LiveServer, subscription_id: str) -> None:
    client(live_server.base_url, "marketplace", *EVSP).Unsubscribe(subscriptionId=subscription_id)


def test_subscribe_list_and_unsubscribe_over_soap(live_server: LiveServer) -> None:
    evsp = client(live_server.base_url, "marketplace", *EVSP)
    url = "http://127.0.0.1:9/partner/notify"
    first = _subscribe(live_server, url)
    assert _subscribe(live_server, url) == first  # idempotent
    listed = evsp.ListSubscriptions(topic="EvseStatusChanged")
    assert first in [s.subscriptionId for s in listed.subscription]
    assert listed.subscription[0].filter.operatorIds.operatorId == ["DE*ICE"]
    operator = client(live_server.base_url, "marketplace", *OPERATOR)
    with pytest.raises(zeep.exceptions.Fault) as refused:
        operator.Subscribe(topic="SdrAvailable", endpointUrl=url)
    assert "Client.NotAuthorized" in str(refused.value.code)
    with pytest.raises(zeep.exceptions.Fault):
        operator.Unsubscribe(subscriptionId=first)
    evsp.Unsubscribe(subscriptionId=first)
    with pytest.raises(zeep.exceptions.Fault):
        evsp.Unsubscribe(subscriptionId=first)


def test_a_subscriber_down_for_a_while_gets_the_event_exactly_once(
    live_server: LiveServer, database: Engine, tmp_path: Path
) -> None:
    port = free_port()
    subscription = _subscribe(live_server, endpoint_url(f"http://127.0.0.1:{port}"))
    out = gembus_cli(
        live_server.env,
        "events", "publish", "--topic", "EvseStatusChanged",
        "--evse", "DE*ICE*E1*1", "--major", "not-available", "--minor", "charging",
    )  # fmt: skip
    keys = [line.split()[1] for line in out.splitlines() if line.startswith("queued ")]
    assert len(keys) == 1, out
    worker = _start_worker(_worker_env(live_server), "--concurrency", "2")
    subscriber = None
    try:
        _wait("3 failed attempts", lambda: _rows(database, keys)[keys[0]][1] >= 3)
        status, _, error = _rows(database, keys)[keys[0]]
        assert status == "pending" and error is not None and error.startswith("transport:")
        subscriber = start_subscriber_process(tmp_path / "notify.jsonl", port=port)
        _wait("delivery", lambda: _rows(database, keys)[keys[0]][0] == "delivered")
        report = tally(subscriber.records(), keys)
        seen = [r["receipt"] for r in subscriber.records() if r["eventId"] == keys[0]]
        print(
            f"\nsubscriber down: delivered after {_rows(database, keys)[keys[0]][1]} attempts; "
            f"lost {report.lost}, duplicated effects {report.duplicated_effects} of 1, "
            f"duplicate deliveries {report.duplicate_deliveries}"
        )
        assert seen[0] == "received" and set(seen[1:]) <= {"duplicate"}
        assert (report.lost, report.duplicated_effects) == (0, 0)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=20)
        if subscriber is not None:
            subscriber.stop()
        _unsubscribe(live_server, subscription)
    assert worker.returncode == 0, output
    assert "delivered 1" in output, output


def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_no_effect(
    live_server: LiveServer, database: Engine, tmp_path: Path
) -> None:
    n = 400
    subscriber = start_subscriber_process(tmp_path / "notify.jsonl", delay_s=0.01)
    subscription = _subscribe(live_server, subscriber.url)
    keys = _publish_many(database, n)
    env = _worker_env(live_server)
    try:
        first = _start_worker(env, "--concurrency", "4", "--batch", "25")
        _wait("the first deliveries", lambda: len(subscriber.records()) >= n // 4)
        first.kill()  # SIGKILL, mid-batch: 4 batches claimed and partly delivered
        first.communicate(timeout=10)
        assert first.returncode == -9
        before = len(subscriber.records())
        second = _start_worker(env, "--concurrency", "4", "--batch", "25", "--once")
        output, _ = second.communicate(timeout=120)
        assert second.returncode == 0, output
        rows = _rows(database, keys)
        report = tally(subscriber.records(), keys)
        print(
            f"\nworker SIGKILL: N = {n} events, killed after {before} deliveries; "
            f"lost {report.lost}, duplicated effects {report.duplicated_effects} of {n}, "
            f"duplicate deliveries {report.duplicate_deliveries}"
        )
        assert sorted({status for status, _, _ in rows.values()}) == ["delivered"]
        assert len(rows) == n
        assert (report.lost, report.duplicated_effects) == (0, 0), report
    finally:
        subscriber.stop()
        _unsubscribe(live_server, subscription)


def _publish_many(engine: Engine, n: int) -> list[str]:
    """n EvseStatusChanged events through the domain publish(), one transaction each."""
    uow_factory = make_session_factory(engine)
    evse = EvseId.parse("DE*ICE*E1*2")
    event = EvseStatusChanged(evse, operator_of(evse), "available", "available")
    keys: list[str] = []
    for _ in range(n):
        with SqlUnitOfWork(uow_factory) as uow:
            keys += [d.idempotency_key for d in publish(uow, Topic.EVSE_STATUS_CHANGED, event)]
            uow.commit()
    assert len(keys) == n, "exactly one subscription matches"
    return keys


def test_outbox_commands_list_retry_and_purge(live_server: LiveServer, database: Engine) -> None:
    subscription = _subscribe(live_server, "http://127.0.0.1:9/partner/notify")
    try:
        out = gembus_cli(
            live_server.env,
            "events", "publish", "--topic", "EvseStatusChanged", "--evse", "DE*ICE*E1*3",
            "--major", "unknown",
        )  # fmt: skip
    finally:
        _unsubscribe(live_server, subscription)
    [key] = [line.split()[1] for line in out.splitlines() if line.startswith("queued ")]
    with database.begin() as connection:  # as if it had run out of attempts
        row_id = connection.execute(
            text(
                "UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'Server: down' "
                "WHERE idempotency_key = :key RETURNING id"
            ),
            {"key": key},
        ).scalar_one()
    dead = gembus_cli(live_server.env, "outbox", "list", "--status", "dead")
    assert f"{row_id:>8} dead" in dead and "Server: down" in dead
    assert "re-driven 1" in gembus_cli(live_server.env, "outbox", "retry", str(row_id))
    assert _rows(database, [key])[key][:2] == ("pending", 0)
    with database.begin() as connection:
        connection.execute(
            text("UPDATE outbox SET status = 'delivered', delivered_at = :t WHERE id = :id"),
            {"t": datetime(2020, 1, 1, tzinfo=UTC), "id": row_id},
        )
    purged = gembus_cli(live_server.env, "outbox", "purge", "--delivered-before", "365")
    assert "purged 1 delivered rows" in purged and _rows(database, [key]) == {}
