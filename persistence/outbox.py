"""Subscriptions and the transactional outbox.

Dead letters are outbox rows with ``status = 'dead'`` (and ``last_error``), not rows moved to
a second table: re-driving is one UPDATE of a status, never a copy + delete that could lose or
double a row between two tables; the operator lists them with the same query as any other row;
and a partial index on pending rows (``ix_outbox_pending``) keeps the relay's claim query from
ever scanning dead or delivered rows, so poison messages cost the hot path nothing.

The claim is ``SELECT … WHERE status='pending' AND available_at <= now ORDER BY id LIMIT n
FOR UPDATE SKIP LOCKED`` on PostgreSQL: concurrent relays (threads or machines) each lock a
disjoint batch, and the locks last until the unit of work commits the outcome. SQLite has no
row locks (SQLAlchemy renders no FOR UPDATE there): one relay only.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from domain.identifiers import OperatorId, ProviderId
from domain.pubsub import (
    Delivery,
    DeliveryStatus,
    OutboxEntry,
    Settlement,
    Subscription,
    SubscriptionFilter,
    SubscriptionStatus,
    Topic,
)
from persistence.bulk import copy_rows, on_postgres, raw_cursor
from persistence.tables import OutboxRow, PartnerRow, SubscriptionRow

_CLAIM_COLUMNS = (
    OutboxRow.id,
    OutboxRow.idempotency_key,
    OutboxRow.topic,
    OutboxRow.subscription_id,
    OutboxRow.endpoint_url,
    OutboxRow.payload,
    OutboxRow.status,
    OutboxRow.attempts,
    OutboxRow.available_at,
    OutboxRow.last_error,
    OutboxRow.created_at,
    OutboxRow.delivered_at,
    OutboxRow.event_id,
    OutboxRow.kind,
)


#: From this many rows at once, PostgreSQL takes them by COPY (persistence/bulk.py).
BULK_ROWS = 32
_COPY_COLUMNS = (
    "event_id", "idempotency_key", "topic", "subscription_id", "endpoint_url", "payload",
    "status", "attempts", "available_at", "created_at", "kind",
)  # fmt: skip


class SqlOutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ subscriptions
    def add_subscription(self, subscription: Subscription, filter_key: str) -> None:
        s = subscription
        self.session.add(
            SubscriptionRow(
                subscription_id=s.subscription_id,
                partner_id=s.partner_id,
                topic=s.topic.value,
                endpoint_url=s.endpoint_url,
                filter_json=_filter_json(s.filter),
                identity=_identity(s.topic, s.endpoint_url, filter_key),
                status=s.status.value,
                created_at=s.created_at,
            )
        )
        self.session.flush()

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        row = self.session.scalar(
            select(SubscriptionRow).where(SubscriptionRow.subscription_id == subscription_id)
        )
        return _subscription(row) if row else None

    def find_subscription(
        self, partner_id: str, topic: Topic, endpoint_url: str, filter_key: str
    ) -> Subscription | None:
        row = self.session.scalar(
            select(SubscriptionRow).where(
                SubscriptionRow.partner_id == partner_id,
                SubscriptionRow.identity == _identity(topic, endpoint_url, filter_key),
            )
        )
        return _subscription(row) if row else None

    def set_subscription_status(self, subscription_id: str, status: SubscriptionStatus) -> None:
        self.session.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.subscription_id == subscription_id)
            .values(status=status.value)
        )

    def delete_subscription(self, subscription_id: str) -> None:
        self.session.execute(
            delete(SubscriptionRow).where(SubscriptionRow.subscription_id == subscription_id)
        )

    def count_subscriptions(self, partner_id: str) -> int:
        query = select(func.count()).where(SubscriptionRow.partner_id == partner_id)
        return int(self.session.scalar(query) or 0)

    def subscriptions_of(
        self, partner_id: str, topic: Topic | None, page: tuple[int, int]
    ) -> tuple[list[Subscription], int]:
        query = select(SubscriptionRow).where(SubscriptionRow.partner_id == partner_id)
        if topic is not None:
            query = query.where(SubscriptionRow.topic == topic.value)
        total = self.session.scalar(select(func.count()).select_from(query.subquery()))
        offset, limit = page
        rows = self.session.scalars(
            query.order_by(SubscriptionRow.topic, SubscriptionRow.subscription_id)
            .offset(offset)
            .limit(limit)
        )
        return [_subscription(r) for r in rows], int(total or 0)

    def active_subscriptions(self, topic: Topic) -> list[Subscription]:
        rows = self.session.scalars(
            select(SubscriptionRow)
            .join(PartnerRow, PartnerRow.partner_id == SubscriptionRow.partner_id)
            .where(
                SubscriptionRow.topic == topic.value,
                SubscriptionRow.status == SubscriptionStatus.ACTIVE.value,
                PartnerRow.status == "active",
            )
            .order_by(SubscriptionRow.id)
        )
        return [_subscription(r) for r in rows]

    # ------------------------------------------------------------------ outbox
    def enqueue(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        rows = [
            {
                "event_id": d.event_id,
                "idempotency_key": d.idempotency_key,
                "topic": d.topic.value,
                "subscription_id": d.subscription_id,
                "endpoint_url": d.endpoint_url,
                "payload": d.payload,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "available_at": d.available_at or d.created_at,
                "created_at": d.created_at,
                "kind": d.kind,
            }
            for d in deliveries
        ]
        if len(rows) >= BULK_ROWS and on_postgres(self.session):
            self._copy(rows)  # an SDR batch announced to its subscribers: hundreds of rows
            return
        self.session.execute(insert(OutboxRow), rows)

    def _copy(self, rows: list[dict[str, Any]]) -> None:
        self.session.flush()
        cursor = raw_cursor(self.session)
        try:
            values = ([r[c] for c in _COPY_COLUMNS] for r in rows)
            copy_rows(cursor, "outbox", _COPY_COLUMNS, values)
        finally:
            cursor.close()

    def claim(self, limit: int, now: datetime) -> list[OutboxEntry]:
        query = (
            select(*_CLAIM_COLUMNS)
            .where(OutboxRow.status == DeliveryStatus.PENDING.value, OutboxRow.available_at <= now)
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_entry(row) for row in self.session.execute(query)]

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Delivered rows in one UPDATE per timestamp (the common case: one per batch)."""
        delivered: dict[datetime | None, list[int]] = defaultdict(list)
        for s in settlements:
            if s.status is DeliveryStatus.DELIVERED:
                delivered[s.delivered_at].append(s.entry_id)
            else:
                self.session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == s.entry_id)
                    .values(
                        status=s.status.value,
                        attempts=s.attempts,
                        available_at=s.available_at,
                        last_error=s.last_error,
                    )
                )
        for at, ids in delivered.items():
            self.session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids))
                .values(
                    status=DeliveryStatus.DELIVERED.value,
                    attempts=OutboxRow.attempts + 1,
                    delivered_at=at,
                )
            )

    def entries(
        self, status: DeliveryStatus | None, page: tuple[int, int]
    ) -> tuple[list[OutboxEntry], int]:
        query = select(*_CLAIM_COLUMNS)
        counted = select(func.count()).select_from(OutboxRow)
        if status is not None:
            query = query.where(OutboxRow.status == status.value)
            counted = counted.where(OutboxRow.status == status.value)
        offset, limit = page
        rows = self.session.execute(query.order_by(OutboxRow.id.desc()).offset(offset).limit(limit))
        return [_entry(r) for r in rows], int(self.session.scalar(counted) or 0)

    def redrive(self, entry_id: int | None, now: datetime) -> int:
        statement = update(OutboxRow).values(
            status=DeliveryStatus.PENDING.value, attempts=0, available_at=now
        )
        if entry_id is None:
            statement = statement.where(OutboxRow.status == DeliveryStatus.DEAD.value)
        else:
            statement = statement.where(
                OutboxRow.id == entry_id, OutboxRow.status != DeliveryStatus.DELIVERED.value
            )
        return _rowcount(self.session.execute(statement))

    def purge_delivered(self, before: datetime) -> int:
        statement = delete(OutboxRow).where(
            OutboxRow.status == DeliveryStatus.DELIVERED.value, OutboxRow.delivered_at < before
        )
        return _rowcount(self.session.execute(statement))


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def _identity(topic: Topic, endpoint_url: str, filter_key: str) -> str:
    return hashlib.sha256(f"{topic.value}\n{endpoint_url}\n{filter_key}".encode()).hexdigest()


def _filter_json(f: SubscriptionFilter | None) -> str | None:
    if f is None:
        return None
    return json.dumps(
        {
            "operatorIds": [o.wire for o in f.operator_ids],
            "countries": list(f.countries),
            "providerIds": [p.wire for p in f.provider_ids],
            "loadAreaIds": list(f.load_area_ids),
        }
    )


def _filter(text: str | None) -> SubscriptionFilter | None:
    if not text:
        return None
    data = json.loads(text)
    return SubscriptionFilter(
        tuple(OperatorId.parse(o) for o in data["operatorIds"]),
        tuple(data["countries"]),
        tuple(ProviderId.parse(p) for p in data["providerIds"]),
        tuple(data["loadAreaIds"]),
    )


def _subscription(row: SubscriptionRow) -> Subscription:
    return Subscription(
        row.subscription_id,
        row.partner_id,
        Topic(row.topic),
        row.endpoint_url,
        _filter(row.filter_json),
        SubscriptionStatus(row.status),
        row.created_at,
    )


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        idempotency_key=row.idempotency_key,
        topic=row.topic,
        subscription_id=row.subscription_id,
        endpoint_url=row.endpoint_url,
        payload=row.payload,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        available_at=row.available_at,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        event_id=row.event_id,
        kind=row.kind,
    )
