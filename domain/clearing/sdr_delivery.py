"""How an EVSP gets its SDRs (GeM: directly or in daily/weekly/monthly batches; OCHP: pull).

Every pending record can be pulled with GetPendingSdrs whatever the EVSP chose; on top,
gembus pushes ReceiveSdrs to the EVSP's published ``sdr_receiver`` service -- at once, from
the submitting transaction (:func:`push_delivery`, called by domain/clearing/sdr_forwarding.py),
or per closed period by :func:`forward_batches`, the repeatable job behind
`gembus sdr deliver-batches` -- always as rows of the transactional outbox, which
`gembus worker` delivers (bus/sdr_push.py reads the answers).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.clearing.sdr import DeliveryMode, DeliverySetting, SdrEntry
from domain.clearing.sdr_wire import PushBatch, receive_sdrs
from domain.marketplace.model import LifecycleState
from domain.partners import Role
from domain.ports import UnitOfWork
from domain.pubsub import Delivery, Topic
from gembus.errors import NotAuthorizedError, NotFoundError

#: The marketplace family an EVSP publishes its push endpoint under (wsdl/sdr_receiver.wsdl).
RECEIVER_FAMILY = "sdr_receiver"
#: Outbox message kind of a ReceiveSdrs delivery (bus/sdr_push.py classifies the answer).
SDR_RECEIVER_KIND = "sdr_receiver"
#: Most records in one ReceiveSdrs message (sdr-receiver:SdrEntryListType).
PART_SIZE = 1000


def new_batch_id() -> str:
    """A ReceiveSdrs batchId (cmn:GembusIdType); also the outbox idempotency key."""
    return "sdrb-" + uuid.uuid4().hex[:24]


def receiver_endpoint(uow: UnitOfWork, partner_id: str) -> str | None:
    """The EVSP's published sdr_receiver service endpoint (the registry is the routing data,
    as for the gateway); a published service wins over a deprecated one."""
    services, _ = uow.marketplace.browse(
        category=None,
        family=RECEIVER_FAMILY,
        version=None,
        provider_id=partner_id,
        text=None,
        states=(LifecycleState.PUBLISHED, LifecycleState.DEPRECATED),
        page=(0, 10),
    )
    ranked = sorted(services, key=lambda s: (s.state is not LifecycleState.PUBLISHED, s.service_id))
    return ranked[0].data.endpoint_url if ranked else None


def push_targets(uow: UnitOfWork, partner_ids: set[str]) -> dict[str, str]:
    """partner -> receiver endpoint, for EVSPs in push mode that published one."""
    if not partner_ids:
        return {}
    modes = uow.sdrs.delivery_modes(partner_ids)
    targets = {}
    for partner_id in sorted(partner_ids):
        if modes.get(partner_id) is DeliveryMode.PUSH:
            url = receiver_endpoint(uow, partner_id)
            if url is not None:
                targets[partner_id] = url
    return targets


def push_delivery(
    uow: UnitOfWork,
    partner_id: str,
    provider_key: str,
    url: str,
    entries: Sequence[SdrEntry],
    now: datetime,
    schedule: str = "immediate",
    period: tuple[datetime, datetime] | None = None,
    part: tuple[int, int] | None = None,
    batch_id: str | None = None,
) -> Delivery:
    """One outbox row: a rendered ReceiveSdrs whose batchId is the idempotency key."""
    batch_id = batch_id or new_batch_id()
    wire = registered_provider_wire(uow, partner_id, provider_key)
    payload = receive_sdrs(PushBatch(batch_id, wire, schedule, tuple(entries), period, part))
    key = batch_id if part is None or part[1] == 1 else f"{batch_id}/{part[0]}"
    return Delivery(
        batch_id, key, Topic.SDR_AVAILABLE, partner_id, url, payload, now, kind=SDR_RECEIVER_KIND
    )


def registered_provider_wire(uow: UnitOfWork, partner_id: str, provider_key: str) -> str:
    """The provider ID as the EVSP registered it (the batch's addressee)."""
    partner = uow.partners.get(partner_id)
    for provider in partner.data.provider_ids if partner else ():
        if provider.key == provider_key:
            return provider.wire
    return provider_key


def set_delivery_mode(
    uow: UnitOfWork, partner_id: str, mode: DeliveryMode, by: str, now: datetime
) -> DeliverySetting:
    """Choose how an EVSP gets its SDRs; applies to every record not yet pushed."""
    partner = uow.partners.get(partner_id)
    if partner is None:
        raise NotFoundError("Partner", f"no partner {partner_id}", field="evsp")
    if not partner.has_role(Role.EVSP):
        raise NotAuthorizedError(f"{partner_id} is not an EVSP", field="evsp")
    setting = DeliverySetting(partner_id, mode, now, by)
    uow.sdrs.set_delivery(setting)
    return setting


def period_of(at: datetime, mode: DeliveryMode) -> tuple[datetime, datetime]:
    """The batch period (UTC, half-open) ``at`` falls in: a day, an ISO week, a month."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if mode is DeliveryMode.DAILY:
        return day, day + timedelta(days=1)
    if mode is DeliveryMode.WEEKLY:
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if mode is DeliveryMode.MONTHLY:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following
    raise ValueError(f"{mode.value} has no batch period")


@dataclass(frozen=True)
class BatchReport:
    """One ReceiveSdrs queued by the batch job (for its progress output)."""

    partner_id: str
    batch_id: str
    schedule: str
    records: int
    period: tuple[datetime, datetime] | None = None
    part: tuple[int, int] | None = None
    skipped: str | None = None  # why nothing could be queued for this EVSP


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def forward_batches(
    uow_factory: Callable[[], UnitOfWork], now: datetime, *, as_of: datetime | None = None
) -> Iterator[BatchReport]:
    """Queue every closed period's batch for EVSPs on a daily/weekly/monthly schedule, and
    push what push-mode EVSPs still miss (records that arrived before their receiver was
    published or while they pulled). One transaction per message; rows are claimed with SKIP
    LOCKED, so jobs running side by side never queue a record twice. Yields as it goes.

    ``as_of`` (default ``now``) decides which periods are closed; the messages are due ``now``.
    """
    with uow_factory() as uow:
        settings = [s for s in uow.sdrs.delivery_settings() if s.mode is not DeliveryMode.PULL]
    for setting in settings:
        yield from _forward_partner(uow_factory, setting, now, as_of or now)


def _forward_partner(
    uow_factory: Callable[[], UnitOfWork], setting: DeliverySetting, now: datetime, as_of: datetime
) -> Iterator[BatchReport]:
    mode, partner_id = setting.mode, setting.partner_id
    cutoff = period_of(as_of, mode)[0] if mode.batched else as_of
    with uow_factory() as uow:
        url = receiver_endpoint(uow, partner_id)
    if url is None:
        yield BatchReport(partner_id, "", mode.schedule, 0, skipped="no published sdr_receiver")
        return
    while True:
        with uow_factory() as uow:
            oldest = uow.sdrs.oldest_unforwarded(partner_id, cutoff)
        if oldest is None:
            return
        provider_key, received_at = oldest
        period = period_of(received_at, mode) if mode.batched else (EPOCH, cutoff)
        queued = 0
        for report in _forward_period(uow_factory, setting, url, provider_key, period, now):
            queued += report.records
            yield report
        if queued == 0:  # the rows are locked by a job running beside this one: its turn
            return


def _forward_period(
    uow_factory: Callable[[], UnitOfWork],
    setting: DeliverySetting,
    url: str,
    provider_key: str,
    period: tuple[datetime, datetime],
    now: datetime,
) -> Iterator[BatchReport]:
    partner_id, mode = setting.partner_id, setting.mode
    with uow_factory() as uow:
        count = uow.sdrs.count_unforwarded(partner_id, provider_key, period)
    parts, batch_id = max(1, math.ceil(count / PART_SIZE)), new_batch_id()
    shown_period = period if mode.batched else None
    for index in range(1, parts + 1):
        with uow_factory() as uow:
            entries = uow.sdrs.unforwarded(partner_id, provider_key, period, PART_SIZE)
            if not entries:
                return
            part = (index, parts) if parts > 1 else None
            delivery = push_delivery(
                uow, partner_id, provider_key, url, entries, now,
                mode.schedule, shown_period, part, batch_id,
            )  # fmt: skip
            uow.outbox.enqueue([delivery])
            uow.sdrs.mark_forwarded(entries)
            uow.commit()
        yield BatchReport(partner_id, batch_id, mode.schedule, len(entries), shown_period, part)
