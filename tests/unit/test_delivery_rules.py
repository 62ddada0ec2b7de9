"""The relay's rules without sockets: backoff with jitter, dead letters, reading answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from bus.contracts import all_contracts
from bus.delivery import DELIVERED, RetryPolicy, classify, envelope, settle
from domain.identifiers import EvseId
from domain.pubsub import (
    DeliveryStatus,
    EvseStatusChanged,
    OutboxEntry,
    SubscriptionFilter,
    Topic,
    notify_body,
    operator_of,
)
from tests.support.soap import envelope as soap_envelope

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = "E0123.SUB-1"
NS = "urn:gembus:notification:v1"


def _entry(attempts: int = 0) -> OutboxEntry:
    return OutboxEntry(
        1, KEY, "EvseStatusChanged", "SUB-1", "http://x/", "<n/>", DeliveryStatus.PENDING,
        attempts, NOW, None, NOW, None, "E0123",
    )  # fmt: skip


@pytest.mark.parametrize("attempt", range(1, 15))
def test_backoff_doubles_within_jitter_bounds_and_is_capped(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=20, base_s=2.0, cap_s=600.0)
    step = min(600.0, 2.0 * 2 ** (attempt - 1))
    assert policy.delay(attempt, lambda: 0.0) == step / 2
    assert policy.delay(attempt, lambda: 0.999999) == pytest.approx(step, rel=1e-5)
    samples = [policy.delay(attempt) for _ in range(200)]
    assert all(step / 2 <= s <= step for s in samples)
    assert len(set(samples)) > 1, "jitter spreads the retries"


def test_a_failure_is_retried_later_until_the_last_attempt_then_dead() -> None:
    policy = RetryPolicy(max_attempts=3, base_s=10.0, cap_s=60.0)
    failed = classify(503, b"Service Unavailable", KEY)
    first = settle(_entry(0), failed, policy, NOW, lambda: 0.5)
    assert (first.status, first.attempts) == (DeliveryStatus.PENDING, 1)
    assert first.available_at == NOW + timedelta(seconds=7.5)
    assert first.last_error and "HTTP 503" in first.last_error
    second = settle(_entry(1), failed, policy, NOW, lambda: 0.0)
    assert second.available_at == NOW + timedelta(seconds=10)
    last = settle(_entry(2), failed, policy, NOW)
    assert (last.status, last.attempts, last.available_at) == (DeliveryStatus.DEAD, 3, NOW)
    done = settle(_entry(2), DELIVERED, policy, NOW)
    assert (done.status, done.attempts, done.delivered_at) == (DeliveryStatus.DELIVERED, 3, NOW)


def _fault(code: str, *, soap_code: str) -> bytes:
    detail = (
        f'<cmn:gembusFault xmlns:cmn="urn:gembus:common:v1"><cmn:code>{code}</cmn:code>'
        f"<cmn:message>no</cmn:message></cmn:gembusFault>"
    )
    return soap_envelope(
        f"<s:Fault><faultcode>s:{soap_code}</faultcode><faultstring>no</faultstring>"
        f"<detail>{detail}</detail></s:Fault>"
    )


def _response(event_id: str, receipt: str) -> bytes:
    return soap_envelope(
        f'<n:NotifyResponse xmlns:n="{NS}"><n:eventId>{event_id}</n:eventId>'
        f"<n:receipt>{receipt}</n:receipt></n:NotifyResponse>"
    )


def test_answers_are_read_as_the_notification_contract_says() -> None:
    assert classify(200, _response(KEY, "received"), KEY) == DELIVERED
    assert classify(200, _response(KEY, "duplicate"), KEY) == DELIVERED
    wrong = classify(200, _response("E999.SUB-1", "received"), KEY)
    assert not wrong.delivered and wrong.retryable
    server = classify(500, _fault("Server.Unavailable", soap_code="Server"), KEY)
    assert not server.delivered and server.retryable and "Server.Unavailable" in str(server.error)
    client = classify(500, _fault("Client.SchemaValidation", soap_code="Client"), KEY)
    assert not client.retryable and not client.suspend_subscription
    unknown = classify(500, _fault("Client.UnknownSubscription", soap_code="Client"), KEY)
    assert not unknown.retryable and unknown.suspend_subscription
    for status, body in ((502, b"<html>bad gateway</html>"), (404, b""), (200, b"<?xml")):
        answer = classify(status, body, KEY)
        assert not answer.delivered and answer.retryable, (status, body)


def test_the_stored_notify_is_valid_and_enveloped_byte_for_byte() -> None:
    evse = EvseId.parse("DE*ICE*E1*1")
    event = EvseStatusChanged(evse, operator_of(evse), "available", "reserved", NOW)
    body = notify_body(KEY, "SUB-1", Topic.EVSE_STATUS_CHANGED, NOW, event)
    schema = all_contracts()["notification"].schema
    assert schema.validate(etree.fromstring(body.encode())), schema.error_log
    assert body.encode() in envelope(body)
    assert etree.fromstring(envelope(body))[0][0].tag == f"{{{NS}}}Notify"


def test_filters_that_do_not_apply_to_the_topic_are_refused_and_equal_ones_compare_equal() -> None:
    from domain.identifiers import OperatorId
    from domain.pubsub import InvalidFilterError

    with pytest.raises(InvalidFilterError):
        SubscriptionFilter(load_area_ids=("a1",)).check(Topic.EVSE_STATUS_CHANGED)
    a = SubscriptionFilter(operator_ids=(OperatorId.parse("DE*ICE"), OperatorId.parse("DEBMW")))
    b = SubscriptionFilter(operator_ids=(OperatorId.parse("DE*BMW"), OperatorId.parse("DEICE")))
    assert a.canonical() == b.canonical() != SubscriptionFilter().canonical() == ""
