"""Service detail records: current state (``sdr``), versions (``sdr_version``), delivery modes.

Ingest is the hot path (issue 5: >= 5,000 SDRs/s in batches of 500), so a batch is written
with two multi-row statements on the Core tables (no ORM unit-of-work bookkeeping):
``INSERT ... ON CONFLICT (sdr_id) DO NOTHING RETURNING sdr_id`` for the records and a plain
multi-row INSERT for their documents; SQLAlchemy's insertmanyvalues turns each into a few
``VALUES (...), (...)`` round trips on psycopg2. The RETURNING list tells which records this
transaction stored: a record missing from it was stored by a concurrent request first (its
INSERT won the unique key), and the use case decides it again against the winner.

Reads that lead to a decision lock their rows (``FOR UPDATE``; SKIP LOCKED for the batch
job), so two requests about one record decide in turn. SQLite has no row locks: SQLAlchemy
renders no FOR UPDATE there and SQLite's single writer serialises the writes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.clearing.sdr import (
    CheckQuery,
    Decline,
    DeliveryMode,
    DeliverySetting,
    PendingQuery,
    SdrEntry,
    SdrStatus,
    SdrVersion,
    ServiceType,
    StoredSdr,
)
from persistence.bulk import copy_rows, on_postgres, raw_cursor
from persistence.tables import SdrDeliveryRow, SdrRow, SdrVersionRow

SDR = cast(Table, SdrRow.__table__)
VERSION = cast(Table, SdrVersionRow.__table__)
_PENDING = (SdrStatus.ACCEPTED.value, SdrStatus.REVISED.value)

_STATE_COLUMNS = (
    SdrRow.sdr_id,
    SdrRow.status,
    SdrRow.version,
    SdrRow.content_hash,
    SdrRow.operator_partner_id,
    SdrRow.provider_partner_id,
    SdrRow.provider_key,
    SdrRow.decline_code,
    SdrRow.decline_reason,
    SdrRow.declined_at,
)
_ENTRY_COLUMNS = (
    SdrRow.sdr_id,
    SdrVersionRow.document,
    SdrRow.status,
    SdrRow.version,
    SdrRow.operator_wire,
    SdrRow.provider_wire,
    SdrRow.received_at,
    SdrRow.status_changed_at,
    SdrRow.decline_code,
    SdrRow.decline_reason,
    SdrRow.declined_at,
    SdrRow.provider_key,
    SdrRow.provider_partner_id,
)
_WITH_DOCUMENT = and_(
    SdrVersionRow.sdr_id == SdrRow.sdr_id, SdrVersionRow.version == SdrRow.version
)


class SqlSdrRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ submit
    def current(self, sdr_ids: Sequence[str], *, lock: bool) -> dict[str, StoredSdr]:
        query = select(*_STATE_COLUMNS).where(SdrRow.sdr_id.in_(sdr_ids))
        if lock:
            query = query.with_for_update()
        return {row.sdr_id: _stored(row) for row in self.session.execute(query)}

    def add(self, versions: Sequence[SdrVersion], forwarded: Collection[str]) -> set[str]:
        if not versions:
            return set()
        ordered = sorted(versions, key=lambda v: v.submission.sdr_id)  # one lock order: no deadlock
        rows = [_row(v, v.submission.sdr_id in forwarded) for v in ordered]
        if on_postgres(self.session):
            return self._copy_new(rows, ordered)
        inserted = set(self.session.scalars(self._insert_new(), rows))
        documents = [_document(v) for v in ordered if v.submission.sdr_id in inserted]
        if documents:
            self.session.execute(insert(VERSION), documents)
        return inserted

    def _copy_new(self, rows: list[dict[str, Any]], ordered: Sequence[SdrVersion]) -> set[str]:
        """PostgreSQL's fast path: COPY the batch into a temporary table, move it over with
        one INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING, COPY the documents.

        COPY cannot skip conflicting keys itself; the temporary table (one per connection,
        emptied at every commit or rollback) gives the INSERT its ON CONFLICT semantics.
        """
        cursor = raw_cursor(self.session)
        try:
            cursor.execute(_INCOMING_TABLE)
            incoming = ([r[c] for c in _SDR_COLUMNS] for r in rows)
            copy_rows(cursor, "sdr_incoming", _SDR_COLUMNS, incoming)
            cursor.execute(_MOVE_INCOMING)
            inserted = {sdr_id for (sdr_id,) in cursor.fetchall()}
            documents = (_document(v) for v in ordered if v.submission.sdr_id in inserted)
            copy_rows(
                cursor,
                "sdr_version",
                _VERSION_COLUMNS,
                ([d[c] for c in _VERSION_COLUMNS] for d in documents),
            )
        finally:
            cursor.close()
        return inserted

    def _insert_new(self) -> Any:
        dialect = postgresql if on_postgres(self.session) else sqlite
        statement = dialect.insert(SDR).on_conflict_do_nothing(index_elements=["sdr_id"])
        return statement.returning(SDR.c.sdr_id)

    def revise(self, version: SdrVersion, previous: int, forwarded: bool) -> bool:
        values = _row(version, forwarded)
        del values["sdr_id"]
        if not forwarded:
            del values["forwarded_version"]  # the older push stays recorded; this one is due
        changed = self.session.execute(
            update(SDR)
            .where(
                SDR.c.sdr_id == version.submission.sdr_id,
                SDR.c.version == previous,
                SDR.c.status == SdrStatus.DECLINED.value,
            )
            .values(**values)
        )
        if not _rowcount(changed):
            return False
        self.session.execute(insert(VERSION), [_document(version)])
        return True

    def reject(self, sdr_id: str, version: int, content_hash: str, at: datetime) -> bool:
        changed = self.session.execute(
            update(SDR)
            .where(
                SDR.c.sdr_id == sdr_id,
                SDR.c.version == version,
                SDR.c.status == SdrStatus.DECLINED.value,
            )
            .values(
                status=SdrStatus.REJECTED.value, content_hash=content_hash, status_changed_at=at
            )
        )
        return _rowcount(changed) == 1

    # ------------------------------------------------------------------ confirm
    def addressed_to(
        self, provider_partner_id: str, provider_key: str, sdr_ids: Sequence[str]
    ) -> dict[str, StoredSdr]:
        query = (
            select(*_STATE_COLUMNS)
            .where(
                SdrRow.sdr_id.in_(sdr_ids),
                SdrRow.provider_partner_id == provider_partner_id,
                SdrRow.provider_key == provider_key,
            )
            .with_for_update()
        )
        return {row.sdr_id: _stored(row) for row in self.session.execute(query)}

    def decide(
        self, decisions: Sequence[tuple[str, int, SdrStatus, Decline | None]], at: datetime
    ) -> None:
        approvals = [
            {"b_id": sdr_id, "b_v": version, "to": status.value, "at": at}
            for sdr_id, version, status, decline in decisions
            if decline is None
        ]
        declines = [
            {"b_id": sdr_id, "b_v": version, "to": status.value, "at": at,
             "code": decline.code, "reason": decline.reason, "declined": decline.at}
            for sdr_id, version, status, decline in decisions
            if decline is not None
        ]  # fmt: skip
        where = (SDR.c.sdr_id == bindparam("b_id"), SDR.c.version == bindparam("b_v"))
        base = update(SDR).where(*where)
        values: dict[str, Any] = {"status": bindparam("to"), "status_changed_at": bindparam("at")}
        if approvals:
            self.session.connection().execute(base.values(**values), approvals)
        if declines:
            values |= {
                "decline_code": bindparam("code"),
                "decline_reason": bindparam("reason"),
                "declined_at": bindparam("declined"),
            }
            self.session.connection().execute(base.values(**values), declines)

    # ------------------------------------------------------------------ read
    def check(self, query: CheckQuery) -> tuple[list[SdrEntry], int]:
        conditions = []
        if query.operator_partner_id is not None:
            conditions.append(SdrRow.operator_partner_id == query.operator_partner_id)
        if query.operator_key is not None:
            conditions.append(SdrRow.operator_key == query.operator_key)
        if query.statuses:
            conditions.append(SdrRow.status.in_([s.value for s in query.statuses]))
        if query.period is not None:
            conditions += [
                SdrRow.status_changed_at >= query.period[0],
                SdrRow.status_changed_at < query.period[1],
            ]
        if query.sdr_ids:
            conditions.append(SdrRow.sdr_id.in_(query.sdr_ids))
        order = (SdrRow.status_changed_at, SdrRow.sdr_id)
        return self._page(conditions, order, query.offset, query.limit)

    def pending(self, query: PendingQuery) -> tuple[list[SdrEntry], int]:
        conditions = [
            SdrRow.provider_partner_id == query.provider_partner_id,
            SdrRow.status.in_(_PENDING),
        ]
        if query.provider_key is not None:
            conditions.append(SdrRow.provider_key == query.provider_key)
        if query.operator_key is not None:
            conditions.append(SdrRow.operator_key == query.operator_key)
        if query.received_before is not None:
            conditions.append(SdrRow.received_at < query.received_before)
        order = (SdrRow.received_at, SdrRow.sdr_id)
        return self._page(conditions, order, query.offset, query.limit)

    def _page(
        self, conditions: list[Any], order: tuple[Any, ...], offset: int, limit: int
    ) -> tuple[list[SdrEntry], int]:
        total = self.session.scalar(select(func.count()).select_from(SdrRow).where(*conditions))
        query = _entries().where(*conditions).order_by(*order).offset(offset).limit(limit)
        return [_entry(r) for r in self.session.execute(query)], int(total or 0)

    # ------------------------------------------------------------------ batches
    def oldest_unforwarded(
        self, provider_partner_id: str, before: datetime
    ) -> tuple[str, datetime] | None:
        query = (
            select(SdrRow.provider_key, SdrRow.received_at)
            .where(*_unforwarded(provider_partner_id), SdrRow.received_at < before)
            .order_by(SdrRow.received_at, SdrRow.sdr_id)
            .limit(1)
        )
        row = self.session.execute(query).first()
        return (row.provider_key, row.received_at) if row else None

    def count_unforwarded(
        self, provider_partner_id: str, provider_key: str, period: tuple[datetime, datetime]
    ) -> int:
        query = (
            select(func.count())
            .select_from(SdrRow)
            .where(*_unforwarded(provider_partner_id, provider_key, period))
        )
        return int(self.session.scalar(query) or 0)

    def unforwarded(
        self,
        provider_partner_id: str,
        provider_key: str,
        period: tuple[datetime, datetime],
        limit: int,
    ) -> list[SdrEntry]:
        query = (
            _entries()
            .where(*_unforwarded(provider_partner_id, provider_key, period))
            .order_by(SdrRow.received_at, SdrRow.sdr_id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=SdrRow)
        )
        return [_entry(r) for r in self.session.execute(query)]

    def mark_forwarded(self, entries: Sequence[SdrEntry]) -> None:
        if not entries:
            return
        statement = (
            update(SDR)
            .where(SDR.c.sdr_id == bindparam("b_id"))
            .values(forwarded_version=bindparam("b_v"))
        )
        self.session.connection().execute(
            statement, [{"b_id": e.sdr_id, "b_v": e.version} for e in entries]
        )

    # ------------------------------------------------------------------ delivery settings
    def delivery_modes(self, partner_ids: Collection[str]) -> dict[str, DeliveryMode]:
        rows = self.session.execute(
            select(SdrDeliveryRow.partner_id, SdrDeliveryRow.mode).where(
                SdrDeliveryRow.partner_id.in_(list(partner_ids))
            )
        )
        return {row.partner_id: DeliveryMode(row.mode) for row in rows}

    def set_delivery(self, setting: DeliverySetting) -> None:
        self.session.merge(
            SdrDeliveryRow(
                partner_id=setting.partner_id,
                mode=setting.mode.value,
                updated_at=setting.updated_at,
                updated_by=setting.updated_by,
            )
        )
        self.session.flush()

    def delivery_settings(self) -> list[DeliverySetting]:
        rows = self.session.scalars(select(SdrDeliveryRow).order_by(SdrDeliveryRow.partner_id))
        return [
            DeliverySetting(r.partner_id, DeliveryMode(r.mode), r.updated_at, r.updated_by)
            for r in rows
        ]


_SDR_COLUMNS = (
    "sdr_id", "operator_partner_id", "operator_key", "operator_wire", "provider_partner_id",
    "provider_key", "provider_wire", "evse_id", "contract_id", "contract_key", "service_type",
    "status", "version", "content_hash", "session_start", "session_end", "total_cost",
    "currency", "energy_kwh", "received_at", "status_changed_at", "forwarded_version",
)  # fmt: skip
_VERSION_COLUMNS = ("sdr_id", "version", "content_hash", "received_at", "document")
_INCOMING_TABLE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS sdr_incoming ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(_SDR_COLUMNS)} FROM sdr WITH NO DATA"
)
_MOVE_INCOMING = (
    f"INSERT INTO sdr ({', '.join(_SDR_COLUMNS)}) SELECT {', '.join(_SDR_COLUMNS)} "  # noqa: S608
    "FROM sdr_incoming ORDER BY sdr_id ON CONFLICT (sdr_id) DO NOTHING RETURNING sdr_id"
)


def _unforwarded(
    provider_partner_id: str,
    provider_key: str | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> list[Any]:
    conditions = [
        SdrRow.provider_partner_id == provider_partner_id,
        SdrRow.status.in_(_PENDING),
        or_(SdrRow.forwarded_version.is_(None), SdrRow.forwarded_version < SdrRow.version),
    ]
    if provider_key is not None:
        conditions.append(SdrRow.provider_key == provider_key)
    if period is not None:
        conditions += [SdrRow.received_at >= period[0], SdrRow.received_at < period[1]]
    return conditions


def _entries() -> Select[*tuple[Any, ...]]:
    return select(*_ENTRY_COLUMNS).join(SdrVersionRow, _WITH_DOCUMENT)


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def _row(version: SdrVersion, forwarded: bool) -> dict[str, Any]:
    record, route = version.submission, version.route
    return {
        "sdr_id": record.sdr_id,
        "operator_partner_id": route.operator_partner_id,
        "operator_key": route.operator_key,
        "operator_wire": route.operator_wire,
        "provider_partner_id": route.provider_partner_id,
        "provider_key": route.provider_key,
        "provider_wire": route.provider_wire,
        "evse_id": record.evse_id,
        "contract_id": record.contract_id,
        "contract_key": route.contract_key,
        "service_type": record.service_type or ServiceType.CHARGING.value,
        "status": version.status.value,
        "version": version.version,
        "content_hash": record.content_hash,
        "session_start": record.start,
        "session_end": record.end,
        "total_cost": record.net_total,
        "currency": record.currency,
        "energy_kwh": record.energy_kwh,
        "received_at": version.received_at,
        "status_changed_at": version.received_at,
        "forwarded_version": version.version if forwarded else None,
    }


def _document(version: SdrVersion) -> dict[str, Any]:
    return {
        "sdr_id": version.submission.sdr_id,
        "version": version.version,
        "content_hash": version.submission.content_hash,
        "received_at": version.received_at,
        "document": version.submission.document,
    }


def _decline(row: Any) -> Decline | None:
    if row.decline_code is None:
        return None
    return Decline(row.decline_code, row.decline_reason, row.declined_at)


def _stored(row: Any) -> StoredSdr:
    return StoredSdr(
        row.sdr_id,
        SdrStatus(row.status),
        row.version,
        row.content_hash,
        row.operator_partner_id,
        row.provider_partner_id,
        row.provider_key,
        _decline(row),
    )


def _entry(row: Any) -> SdrEntry:
    return SdrEntry(
        row.sdr_id,
        row.document,
        SdrStatus(row.status),
        row.version,
        row.operator_wire,
        row.provider_wire,
        row.received_at,
        row.status_changed_at,
        _decline(row),
        row.provider_key,
        row.provider_partner_id,
    )
