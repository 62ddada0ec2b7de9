"""Publish/subscribe and the outbox relay on PostgreSQL and SQLite.

The subscriber is the real fake of tests/fakes/subscriber.py served from a thread; the relay
is bus/delivery.py's, driven one transaction at a time with an injectable clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree
from sqlalchemy import text

from bus.contracts import all_contracts
from bus.delivery import Courier, Relay, RetryPolicy
from domain.identifiers import EvseId, OperatorId, ProviderId
from domain.pubsub import (
    DeliveryStatus,
    EvseStatusChanged,
    InvalidEndpointError,
    InvalidFilterError,
    LoadRequestPublished,
    SdrAvailable,
    SubscriptionFilter,
    SubscriptionStatus,
    Topic,
    list_subscriptions,
    operator_of,
    publish,
    subscribe,
    unsubscribe,
)
from gembus.bootstrap import Gembus
from gembus.errors import NotAuthorizedError
from tests.fakes.subscriber import (
    SubscriberApp,
    endpoint_url,
    make_subscriber_app,
    serve_subscriber,
    tally,
)
from tests.support.marketplace import partner

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def bus(gembus: Gembus) -> Gembus:
    with gembus.engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox"))
        connection.execute(text("DELETE FROM subscription"))
    return gembus


@pytest.fixture
def subscriber() -> Iterator[tuple[SubscriberApp, str]]:
    app = make_subscriber_app()
    running = serve_subscriber(app)
    yield app, endpoint_url(running.base_url)
    running.stop()


def status_change(evse: str = "DE*ICE*E1*1", major: str = "available") -> EvseStatusChanged:
    evse_id = EvseId.parse(evse)
    return EvseStatusChanged(evse_id, operator_of(evse_id), major, "available" if major else None)


def _subscribe(
    bus: Gembus, partner_id: str, topic: Topic, url: str, f: SubscriptionFilter | None = None
) -> str:
    with bus.uow() as uow:
        actor = partner(bus.uow, partner_id)
        subscription = subscribe(uow, actor, topic, url, f, NOW)
        uow.commit()
    return subscription.subscription_id


def _publish(bus: Gembus, topic: Topic, event: object, n: int = 1) -> list[str]:
    keys = []
    with bus.uow() as uow:
        for _ in range(n):
            keys += [d.idempotency_key for d in publish(uow, topic, event, NOW)]  # type: ignore[arg-type]
        uow.commit()
    return keys


def _relay(bus: Gembus, clock: Callable[[], datetime], **policy: float) -> Relay:
    retry = RetryPolicy(
        int(policy.get("max_attempts", 3)), policy.get("base_s", 10.0), policy.get("cap_s", 60.0)
    )
    return Relay(bus.uow, Courier(5.0), retry, batch=20, clock=clock)


def _rows(bus: Gembus) -> list[tuple[str, int, str | None]]:
    with bus.uow() as uow:
        entries, _ = uow.outbox.entries(None, (0, 1000))
    return [(e.status.value, e.attempts, e.last_error) for e in reversed(entries)]


# ------------------------------------------------------------------------------ publish


def test_publish_commits_with_the_callers_transaction_and_not_without(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    _, url = subscriber
    sub = _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    with bus.uow() as uow:
        assert len(publish(uow, Topic.EVSE_STATUS_CHANGED, status_change())) == 1
        # no commit: the business change and its deliveries roll back together
    assert _rows(bus) == []
    with bus.uow() as uow:
        queued = publish(uow, Topic.EVSE_STATUS_CHANGED, status_change(), NOW)
        uow.commit()
    with bus.uow() as uow:
        [entry], total = uow.outbox.entries(DeliveryStatus.PENDING, (0, 10))
    assert total == 1 and entry.subscription_id == sub and entry.endpoint_url == url
    assert entry.idempotency_key == queued[0].idempotency_key
    assert entry.idempotency_key.startswith(entry.event_id + ".")
    notify = etree.fromstring(entry.payload.encode())
    schema = all_contracts()["notification"].schema
    assert schema.validate(notify), schema.error_log
    assert notify.findtext("{urn:gembus:notification:v1}eventId") == entry.idempotency_key


def test_every_topic_renders_a_valid_notify_and_matches_by_filter_and_owner(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    _, url = subscriber
    bmw_only = SubscriptionFilter(operator_ids=(OperatorId.parse("DE*BMW"),))
    _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url, bmw_only)
    _subscribe(
        bus, "navi-search", Topic.EVSE_STATUS_CHANGED, url, SubscriptionFilter(countries=("DE",))
    )
    _subscribe(bus, "tnm-mobility", Topic.SDR_AVAILABLE, url)
    _subscribe(bus, "bmw-emobility", Topic.SDR_AVAILABLE, url)
    _subscribe(bus, "ice-charging", Topic.LOAD_REQUEST_PUBLISHED, url)
    _subscribe(bus, "tnm-mobility", Topic.LOAD_REQUEST_PUBLISHED, url)
    evse = EvseId.parse("DE*ICE*E1*1")
    sdr = SdrAvailable(
        "DEICE00000001",
        "accepted",
        OperatorId.parse("DE*ICE"),
        ProviderId.parse("NL-TNM"),
        evse,
        "NL-TNM-000122045",
        NOW,
        NOW + timedelta(hours=1),
    )
    load = LoadRequestPublished(
        "LR-1",
        "enel-dso",
        ("enel-rm-la-0042",),
        (NOW, NOW + timedelta(hours=2)),
        NOW,
        ("ice-charging",),
    )
    with bus.uow() as uow:
        to_status = publish(uow, Topic.EVSE_STATUS_CHANGED, status_change())
        to_sdr = publish(uow, Topic.SDR_AVAILABLE, sdr)
        to_load = publish(uow, Topic.LOAD_REQUEST_PUBLISHED, load)
        uow.commit()
    owners = {}
    with bus.uow() as uow:
        for s in uow.outbox.subscriptions_of("tnm-mobility", None, (0, 100))[0]:
            owners[s.subscription_id] = "tnm-mobility"
    assert len(to_status) == 1 and to_status[0].subscription_id not in owners  # navi-search
    assert [owners.get(d.subscription_id) for d in to_sdr] == ["tnm-mobility"]  # owner only
    assert len(to_load) == 1 and to_load[0].subscription_id not in owners  # addressee only
    schema = all_contracts()["notification"].schema
    for delivery in to_status + to_sdr + to_load:
        assert schema.validate(etree.fromstring(delivery.payload.encode())), schema.error_log


def test_subscribe_rules(bus: Gembus, subscriber: tuple[SubscriberApp, str]) -> None:
    _, url = subscriber
    first = _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    assert _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url) == first
    with bus.uow() as uow:
        uow.outbox.set_subscription_status(first, SubscriptionStatus.SUSPENDED)
        uow.commit()
    assert _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url) == first
    with bus.uow() as uow:
        assert uow.outbox.get_subscription(first).status is SubscriptionStatus.ACTIVE  # type: ignore[union-attr]
    refusals: list[tuple[str, Topic, str, SubscriptionFilter | None, type[Exception]]] = [
        ("ice-charging", Topic.SDR_AVAILABLE, url, None, NotAuthorizedError),
        ("navi-search", Topic.LOAD_REQUEST_PUBLISHED, url, None, NotAuthorizedError),
        (
            "tnm-mobility",
            Topic.SDR_AVAILABLE,
            url,
            SubscriptionFilter(provider_ids=(ProviderId.parse("DE-BMW"),)),
            NotAuthorizedError,
        ),
        (
            "tnm-mobility",
            Topic.SDR_AVAILABLE,
            url,
            SubscriptionFilter(countries=("DE",)),
            InvalidFilterError,
        ),
        ("tnm-mobility", Topic.EVSE_STATUS_CHANGED, "ftp://x/y", None, InvalidEndpointError),
    ]
    for partner_id, topic, endpoint, f, error in refusals:
        with pytest.raises(error):
            _subscribe(bus, partner_id, topic, endpoint, f)
    with bus.uow() as uow:
        with pytest.raises(NotAuthorizedError):
            unsubscribe(uow, partner(bus.uow, "ice-charging"), first)
        with pytest.raises(NotAuthorizedError):
            list_subscriptions(uow, partner(bus.uow, "ice-charging"), "tnm-mobility", None, (0, 10))
        found, total = list_subscriptions(
            uow, partner(bus.uow, "gembus-admin"), "tnm-mobility", None, (0, 10)
        )
        assert total == 1 and found[0].subscription_id == first
        unsubscribe(uow, partner(bus.uow, "tnm-mobility"), first)
        uow.commit()
    with bus.uow() as uow:
        assert uow.outbox.get_subscription(first) is None


# ------------------------------------------------------------------------------ relay


def test_relay_delivers_retries_with_backoff_dead_letters_and_re_drives(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    app, url = subscriber
    _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    now = [NOW]
    relay = _relay(bus, lambda: now[0], max_attempts=3, base_s=10.0, cap_s=60.0)
    keys = _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change(), n=3)
    assert relay.run_once() == 3 and relay.run_once() == 0
    assert [s for s, _, _ in _rows(bus)] == ["delivered"] * 3
    app.fault_code = "Server.Unavailable"
    [key] = _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change())
    assert relay.run_once() == 1
    assert _rows(bus)[-1][:2] == ("pending", 1) and "Server.Unavailable" in str(_rows(bus)[-1][2])
    assert relay.run_once() == 0  # not due: backoff 5..10 s after the first attempt
    now[0] += timedelta(seconds=10)
    assert relay.run_once() == 1 and _rows(bus)[-1][:2] == ("pending", 2)
    now[0] += timedelta(seconds=20)
    assert relay.run_once() == 1 and _rows(bus)[-1][:2] == ("dead", 3)  # max_attempts
    app.fault_code = None
    with bus.uow() as uow:
        dead, _ = uow.outbox.entries(DeliveryStatus.DEAD, (0, 10))
        assert uow.outbox.redrive(dead[0].id, now[0]) == 1
        uow.commit()
    assert relay.run_once() == 1 and _rows(bus)[-1][:2] == ("delivered", 1)
    report = tally(app.records, [*keys, key])
    assert (report.lost, report.duplicated_effects, report.duplicate_deliveries) == (0, 0, 0)


def test_a_client_fault_dead_letters_at_once_and_unknown_subscription_suspends(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    app, url = subscriber
    sub = _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    relay = _relay(bus, lambda: NOW)
    app.fault_code = "Client.SchemaValidation"
    _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change())
    assert relay.run_once() == 1 and _rows(bus)[-1][:2] == ("dead", 1)
    app.fault_code = "Client.UnknownSubscription"
    _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change())
    assert relay.run_once() == 1 and _rows(bus)[-1][:2] == ("dead", 1)
    with bus.uow() as uow:
        assert uow.outbox.get_subscription(sub).status is SubscriptionStatus.SUSPENDED  # type: ignore[union-attr]
        assert publish(uow, Topic.EVSE_STATUS_CHANGED, status_change()) == []
        assert uow.outbox.redrive(None, NOW) == 2  # --all-dead
        uow.commit()
    app.fault_code = None
    assert relay.run_once() == 2 and [s for s, _, _ in _rows(bus)] == ["delivered"] * 2


def test_an_unreachable_subscriber_is_retried_not_lost(bus: Gembus) -> None:
    _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, "http://127.0.0.1:9/notify")
    _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change())
    assert _relay(bus, lambda: NOW).run_once() == 1
    status, attempts, error = _rows(bus)[0]
    assert (status, attempts) == ("pending", 1) and error and error.startswith("transport:")


def test_purge_deletes_only_old_delivered_rows(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    _, url = subscriber
    _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change(), n=2)
    _relay(bus, lambda: NOW).run_once()
    _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change())
    with bus.uow() as uow:
        assert uow.outbox.purge_delivered(NOW) == 0
        assert uow.outbox.purge_delivered(NOW + timedelta(seconds=1)) == 2
        uow.commit()
    assert [s for s, _, _ in _rows(bus)] == ["pending"]


# ------------------------------------------------------------------------------ SKIP LOCKED


ON_POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.mark.postgres
@ON_POSTGRES
def test_concurrent_claims_on_postgres_are_disjoint(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    _, url = subscriber
    _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change(), n=30)
    with bus.uow() as first, bus.uow() as second:
        a = {e.id for e in first.outbox.claim(20, NOW)}
        b = {e.id for e in second.outbox.claim(20, NOW)}
    assert len(a) == 20 and len(b) == 10 and not a & b


@pytest.mark.postgres
@ON_POSTGRES
def test_two_relays_on_postgres_never_deliver_the_same_row(
    bus: Gembus, subscriber: tuple[SubscriberApp, str]
) -> None:
    app, url = subscriber
    app.state.delay_s = 0.002
    _subscribe(bus, "tnm-mobility", Topic.EVSE_STATUS_CHANGED, url)
    keys = _publish(bus, Topic.EVSE_STATUS_CHANGED, status_change(), n=300)
    stop = threading.Event()
    relays = [_relay(bus, lambda: NOW) for _ in range(2)]
    threads = [threading.Thread(target=r.run, args=(stop,), kwargs={"once": True}) for r in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    report = tally(app.records, keys)
    assert (report.lost, report.duplicated_effects, report.duplicate_deliveries) == (0, 0, 0)
    assert len(app.records) == 300
    assert all(r.stats.delivered > 0 for r in relays), "both relays took a share"
