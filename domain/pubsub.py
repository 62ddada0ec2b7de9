"""Publish/subscribe: topics, subscriptions and the events gembus publishes to partners.

A partner subscribes to a topic with the URL of its Notify endpoint (wsdl/notification.wsdl)
and an optional filter. ``publish(uow, topic, event)`` writes one outbox delivery per matching
active subscription *in the caller's unit of work*, so the deliveries commit (or roll back)
together with the business change that caused the event; the relay (bus/delivery.py) sends
them later, at least once. Each delivery's ``eventId`` is unique per event and subscription
(notification.xsd) and is the idempotency key the subscriber deduplicates on.

The Notify body is rendered here, once, at publish time: a retry sends the very same bytes.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from domain.identifiers import EvseId, OperatorId, ProviderId
from domain.partners import Partner, Role
from gembus.errors import ClientError, NotAuthorizedError, NotFoundError

if TYPE_CHECKING:  # domain.ports imports the types below
    from domain.ports import UnitOfWork

NOTIFICATION_NS = "urn:gembus:notification:v1"
#: Most subscriptions one partner may hold (Client.TooManySubscriptions beyond).
MAX_SUBSCRIPTIONS_PER_PARTNER = 100


class Topic(enum.StrEnum):
    """brk:TopicType."""

    EVSE_STATUS_CHANGED = "EvseStatusChanged"
    SDR_AVAILABLE = "SdrAvailable"
    LOAD_REQUEST_PUBLISHED = "LoadRequestPublished"


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # the endpoint said Client.UnknownSubscription; Subscribe resumes


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # dead letter: out of attempts or refused with a Client fault


class InvalidFilterError(ClientError):
    fault_code = "Client.InvalidFilter"
    default_message = "the filter does not apply to the topic"


class InvalidEndpointError(ClientError):
    fault_code = "Client.InvalidEndpoint"
    default_message = "the endpoint URL is not usable"


class TooManySubscriptionsError(ClientError):
    fault_code = "Client.TooManySubscriptions"
    default_message = "the partner holds the most subscriptions allowed"


_FILTER_LISTS = {
    "operator_ids": "operatorIds",
    "countries": "countries",
    "provider_ids": "providerIds",
    "load_area_ids": "loadAreaIds",
}


@dataclass(frozen=True)
class SubscriptionFilter:
    """Lists are OR-ed inside, different lists AND-ed (marketplace.xsd SubscriptionFilterType)."""

    operator_ids: tuple[OperatorId, ...] = ()
    countries: tuple[str, ...] = ()
    provider_ids: tuple[ProviderId, ...] = ()
    load_area_ids: tuple[str, ...] = ()

    #: Which lists apply to which topic; any other list is Client.InvalidFilter.
    APPLIES = {
        Topic.EVSE_STATUS_CHANGED: ("operator_ids", "countries"),
        Topic.SDR_AVAILABLE: ("provider_ids",),
        Topic.LOAD_REQUEST_PUBLISHED: ("load_area_ids",),
    }

    def check(self, topic: Topic) -> None:
        for name, xml_name in _FILTER_LISTS.items():
            if getattr(self, name) and name not in self.APPLIES[topic]:
                raise InvalidFilterError(
                    f"{xml_name} does not apply to {topic.value}", field=f"filter/{xml_name}"
                )

    def canonical(self) -> str:
        """A stable text form: two equal filters (by key) compare equal in the database."""
        parts = (
            ",".join(sorted({o.key for o in self.operator_ids})),
            ",".join(sorted(set(self.countries))),
            ",".join(sorted({p.key for p in self.provider_ids})),
            ",".join(sorted(set(self.load_area_ids))),
        )
        return "|".join(parts) if any(parts) else ""


@dataclass
class Subscription:
    subscription_id: str
    partner_id: str
    topic: Topic
    endpoint_url: str
    filter: SubscriptionFilter | None
    status: SubscriptionStatus
    created_at: datetime


# ------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class EvseStatusChanged:
    """The live status of an EVSE changed (OCHP EvseStatusType major/minor)."""

    evse_id: EvseId
    operator_id: OperatorId
    major: str
    minor: str | None = None
    ttl: datetime | None = None


@dataclass(frozen=True)
class SdrAvailable:
    """An SDR for one of the subscriber's customers was accepted and can be fetched."""

    sdr_id: str
    status: str  # accepted | revised
    operator_id: OperatorId
    provider_id: ProviderId
    evse_id: EvseId
    contract_id: str
    start: datetime
    end: datetime
    total_cost: tuple[Decimal, str] | None = None  # (amount, currency)


@dataclass(frozen=True)
class LoadRequestPublished:
    """A DSO published a load-management request addressed to ``addressees`` (partner IDs)."""

    request_id: str
    dso_partner_id: str
    load_area_ids: tuple[str, ...]
    period: tuple[datetime, datetime]
    acknowledge_by: datetime
    addressees: tuple[str, ...]


def operator_of(evse_id: EvseId) -> OperatorId:
    """The operator ID (ISO form, ``DE*ICE``) an EVSE ID belongs to."""
    key = evse_id.operator_key
    return OperatorId.parse(f"{key[:2]}*{key[2:]}")


Event = EvseStatusChanged | SdrAvailable | LoadRequestPublished

_TOPIC_OF: dict[type, Topic] = {
    EvseStatusChanged: Topic.EVSE_STATUS_CHANGED,
    SdrAvailable: Topic.SDR_AVAILABLE,
    LoadRequestPublished: Topic.LOAD_REQUEST_PUBLISHED,
}


@dataclass(frozen=True)
class Delivery:
    """One outbox row: an event for one subscription, rendered and ready to POST."""

    event_id: str
    idempotency_key: str  # the wire eventId
    topic: Topic
    subscription_id: str
    endpoint_url: str
    payload: str  # the Notify element
    created_at: datetime  # the event's occurredAt: the delivery is due from then on
    #: What the payload is, which picks its SOAPAction and how its answer is read
    #: (bus/delivery.py): "notify" (a Notify envelope) or "sdr_receiver" (ReceiveSdrs, whose
    #: subscription_id is the receiving EVSP's partner ID).
    kind: str = "notify"
    #: Not due before this instant (a resend after a partial answer); None: created_at.
    available_at: datetime | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """A stored delivery as the relay and the operator see it."""

    id: int
    idempotency_key: str
    topic: str
    subscription_id: str
    endpoint_url: str
    payload: str
    status: DeliveryStatus
    attempts: int
    available_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    event_id: str
    kind: str = "notify"


@dataclass(frozen=True)
class Settlement:
    """How one claimed row ends its attempt (decided by the relay, bus/delivery.py)."""

    entry_id: int
    status: DeliveryStatus
    attempts: int
    available_at: datetime
    last_error: str | None
    delivered_at: datetime | None = None


# ------------------------------------------------------------------------------------ publish


def publish(
    uow: UnitOfWork, topic: Topic, event: Event, occurred_at: datetime | None = None
) -> list[Delivery]:
    """Queue ``event`` for every matching active subscription, in the caller's transaction.

    Nothing is sent here; the caller commits (with its business change) or rolls back, and the
    deliveries share that fate. Returns what was queued.
    """
    if _TOPIC_OF[type(event)] is not topic:
        raise ValueError(f"a {type(event).__name__} cannot be published on {topic.value}")
    occurred_at = occurred_at or datetime.now(UTC)
    event_id = "E" + uuid.uuid4().hex
    owner = (  # SdrAvailable goes to the EVSP that owns the provider ID, and to no one else
        uow.partners.owner_of_identifier("provider", event.provider_id.key)
        if isinstance(event, SdrAvailable)
        else None
    )
    deliveries = [
        _delivery(event_id, topic, s, event, occurred_at)
        for s in uow.outbox.active_subscriptions(topic)
        if _matches(s, event, owner)
    ]
    uow.outbox.enqueue(deliveries)
    return deliveries


def publish_all(
    uow: UnitOfWork, topic: Topic, events: Iterable[Event], occurred_at: datetime | None = None
) -> list[Delivery]:
    """``publish`` for many events of one topic, in the caller's transaction.

    The subscriptions are read once and each SdrAvailable owner once per provider ID, so a
    batch of 500 SDRs costs one query instead of a thousand; when nobody subscribes, the
    events (a generator is fine) are never even built.
    """
    subscriptions = uow.outbox.active_subscriptions(topic)
    if not subscriptions:
        return []
    occurred_at = occurred_at or datetime.now(UTC)
    owners: dict[str, str | None] = {}
    deliveries: list[Delivery] = []
    for event in events:
        if _TOPIC_OF[type(event)] is not topic:
            raise ValueError(f"a {type(event).__name__} cannot be published on {topic.value}")
        owner = None
        if isinstance(event, SdrAvailable):
            key = event.provider_id.key
            if key not in owners:
                owners[key] = uow.partners.owner_of_identifier("provider", key)
            owner = owners[key]
        event_id = "E" + uuid.uuid4().hex
        deliveries += [
            _delivery(event_id, topic, s, event, occurred_at)
            for s in subscriptions
            if _matches(s, event, owner)
        ]
    uow.outbox.enqueue(deliveries)
    return deliveries


def _delivery(
    event_id: str, topic: Topic, s: Subscription, event: Event, occurred_at: datetime
) -> Delivery:
    key = f"{event_id}.{s.subscription_id}"
    body = notify_body(key, s.subscription_id, topic, occurred_at, event)
    return Delivery(event_id, key, topic, s.subscription_id, s.endpoint_url, body, occurred_at)


def _matches(s: Subscription, event: Event, sdr_owner: str | None) -> bool:
    f = s.filter or SubscriptionFilter()
    if isinstance(event, EvseStatusChanged):
        operator_key = event.evse_id.operator_key
        return (not f.operator_ids or operator_key in {o.key for o in f.operator_ids}) and (
            not f.countries or operator_key[:2] in f.countries
        )
    if isinstance(event, SdrAvailable):
        return sdr_owner == s.partner_id and (
            not f.provider_ids or event.provider_id.key in {p.key for p in f.provider_ids}
        )
    return s.partner_id in event.addressees and (
        not f.load_area_ids or bool(set(f.load_area_ids) & set(event.load_area_ids))
    )


# ------------------------------------------------------------------------------ subscriptions


def subscribe(
    uow: UnitOfWork,
    actor: Partner,
    topic: Topic,
    endpoint_url: str,
    subscription_filter: SubscriptionFilter | None,
    now: datetime,
) -> Subscription:
    """Subscribe ``actor``; the same (topic, endpoint, filter) again returns (and resumes) the
    existing subscription."""
    _check_endpoint(endpoint_url)
    if subscription_filter is not None:
        subscription_filter.check(topic)
        if not subscription_filter.canonical():
            subscription_filter = None
    _authorize(actor, topic, subscription_filter)
    existing = uow.outbox.find_subscription(
        actor.partner_id, topic, endpoint_url, _canonical(subscription_filter)
    )
    if existing is not None:
        if existing.status is SubscriptionStatus.SUSPENDED:
            existing.status = SubscriptionStatus.ACTIVE
            uow.outbox.set_subscription_status(existing.subscription_id, existing.status)
        return existing
    if uow.outbox.count_subscriptions(actor.partner_id) >= MAX_SUBSCRIPTIONS_PER_PARTNER:
        raise TooManySubscriptionsError(
            f"at most {MAX_SUBSCRIPTIONS_PER_PARTNER} subscriptions per partner"
        )
    subscription = Subscription(
        "SUB-" + uuid.uuid4().hex[:16],
        actor.partner_id,
        topic,
        endpoint_url,
        subscription_filter,
        SubscriptionStatus.ACTIVE,
        now,
    )
    uow.outbox.add_subscription(subscription, _canonical(subscription_filter))
    return subscription


def unsubscribe(uow: UnitOfWork, actor: Partner, subscription_id: str) -> None:
    """Delete a subscription; deliveries already queued still go out (they carry the URL)."""
    subscription = uow.outbox.get_subscription(subscription_id)
    if subscription is None:
        raise NotFoundError(
            "Subscription", f"no subscription {subscription_id}", field="subscriptionId"
        )
    if subscription.partner_id != actor.partner_id and not actor.has_role(
        Role.MARKETPLACE_OPERATOR
    ):
        raise NotAuthorizedError(
            "only the subscribing partner may unsubscribe", field="subscriptionId"
        )
    uow.outbox.delete_subscription(subscription_id)


def list_subscriptions(
    uow: UnitOfWork,
    actor: Partner,
    partner_id: str | None,
    topic: Topic | None,
    page: tuple[int, int],
) -> tuple[list[Subscription], int]:
    """The actor's subscriptions; the marketplace operator may name any partner."""
    owner = partner_id or actor.partner_id
    if owner != actor.partner_id and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError(
            "only the marketplace operator may list another partner's subscriptions",
            field="partnerId",
        )
    return uow.outbox.subscriptions_of(owner, topic, page)


def _canonical(subscription_filter: SubscriptionFilter | None) -> str:
    return subscription_filter.canonical() if subscription_filter else ""


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpointError(f"{url!r} is not an http(s) URL", field="endpointUrl")
    if parts.username or parts.password:
        raise InvalidEndpointError("credentials do not belong in the URL", field="endpointUrl")


def _authorize(actor: Partner, topic: Topic, f: SubscriptionFilter | None) -> None:
    if topic is Topic.SDR_AVAILABLE:
        if not actor.has_role(Role.EVSP):
            raise NotAuthorizedError("SdrAvailable is for EVSPs", field="topic")
        own = {p.key for p in actor.data.provider_ids}
        for i, provider in enumerate(f.provider_ids if f else (), 1):
            if provider.key not in own:
                raise NotAuthorizedError(
                    f"provider ID {provider.wire} is not yours",
                    field=f"filter/providerIds/providerId[{i}]",
                )
    if topic is Topic.LOAD_REQUEST_PUBLISHED and not (
        actor.has_role(Role.EVSE_OPERATOR) or actor.has_role(Role.EVSP)
    ):
        raise NotAuthorizedError(
            "LoadRequestPublished is for EVSE operators and EVSPs", field="topic"
        )


# ------------------------------------------------------------------------------ Notify body


def notify_body(
    event_id: str, subscription_id: str, topic: Topic, occurred_at: datetime, event: Event
) -> str:
    """The Notify element of notification.xsd (field order as in the XSD sequences)."""
    return (
        f'<n:Notify xmlns:n="{NOTIFICATION_NS}">'
        + _el("eventId", event_id)
        + _el("subscriptionId", subscription_id)
        + _el("topic", topic.value)
        + _el("occurredAt", _time(occurred_at))
        + _payload(event)
        + "</n:Notify>"
    )


def _payload(event: Event) -> str:
    if isinstance(event, EvseStatusChanged):
        inner = _el("evseId", event.evse_id.wire) + _el("operatorId", event.operator_id.wire)
        inner += _el("major", event.major) + _opt("minor", event.minor)
        inner += _opt("ttl", _time(event.ttl) if event.ttl else None)
        return _el("evseStatusChanged", inner, raw=True)
    if isinstance(event, SdrAvailable):
        inner = _el("sdrId", event.sdr_id) + _el("status", event.status)
        inner += _el("operatorId", event.operator_id.wire)
        inner += _el("providerId", event.provider_id.wire) + _el("evseId", event.evse_id.wire)
        inner += _el("contractId", event.contract_id)
        inner += _el("startDateTime", _time(event.start)) + _el("endDateTime", _time(event.end))
        if event.total_cost:
            amount, currency = event.total_cost
            inner += _money(amount, currency)
        return _el("sdrAvailable", inner, raw=True)
    areas = "".join(
        f'<e:loadAreaId xmlns:e="urn:gembus:energy:v1">{escape(a)}</e:loadAreaId>'
        for a in event.load_area_ids
    )
    inner = _el("requestId", event.request_id) + _el("dsoPartnerId", event.dso_partner_id)
    inner += _el("loadAreaIds", areas, raw=True)
    inner += _el("validityPeriod", _period(*event.period), raw=True)
    inner += _el("acknowledgeBy", _time(event.acknowledge_by))
    return _el("loadRequestPublished", inner, raw=True)


def _money(amount: Decimal, currency: str) -> str:
    cmn = 'xmlns:c="urn:gembus:common:v1"'
    return (
        f"<n:totalCost><c:amount {cmn}>{amount}</c:amount>"
        f"<c:currency {cmn}>{escape(currency)}</c:currency></n:totalCost>"
    )


def _period(start: datetime, end: datetime) -> str:
    cmn = 'xmlns:c="urn:gembus:common:v1"'
    return f"<c:start {cmn}>{_time(start)}</c:start><c:end {cmn}>{_time(end)}</c:end>"


def _el(name: str, text: str, *, raw: bool = False) -> str:
    return f"<n:{name}>{text if raw else escape(text)}</n:{name}>"


def _opt(name: str, text: str | None) -> str:
    return _el(name, text) if text is not None else ""


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
