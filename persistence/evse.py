"""EVSE master data, documents, live status, upload replays and pull state (tables ``evse*``).

Search EVSE is one SQL statement per page on both databases: the criteria become conditions
on the narrow ``evse`` table (bit masks for list criteria, the grid cell and bounding box for
proximity), the exact great-circle distance is computed by the database (SQLite has the math
functions since 3.35) on the rows that survive, and only the page's rows fetch their document
and status. Its hot shape (proximity with plug, connector, mode and static-status criteria)
is a statement prepared once per PostgreSQL connection (see _NEAR_SQL). Only "open now" needs
Python (time zones, weekdays): then the candidates' keys and hours come back, are filtered by
domain/charging/opening.py, and the page is cut after.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    Table,
    column,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TextualSelect

from domain.charging.master_data import PullState
from domain.charging.model import (
    AUTH_MODES,
    CHARGING_MODES,
    CONNECTOR_STANDARDS,
    PAYMENT_OPTIONS,
    PLUGS,
    UNKNOWN,
    VALUE_ADDED_SERVICES,
    EvseRecord,
    EvseStatus,
    Major,
    OpeningTimes,
    Period,
    ScheduledStatus,
    StoredEvse,
    mask,
)
from domain.charging.opening import is_open_at
from domain.charging.pull import (
    PullKind,
    PullOutcome,
    PullRun,
    Trigger,
    rejections_from_json,
)
from domain.charging.search import (
    EARTH_RADIUS_KM,
    Management,
    Match,
    Operators,
    SearchQuery,
    Technical,
    bounding_box,
    cells_for,
    grid_cell,
)
from persistence.bulk import copy_rows, on_postgres, raw_cursor
from persistence.fastpath import PreparedQuery
from persistence.tables import (
    INDEXED_PLUGS,
    EvseDocumentRow,
    EvseOperatorRow,
    EvsePullRow,
    EvseRow,
    EvseStatusRow,
    EvseUploadRow,
    plug_predicate,
)

EVSE = cast(Table, EvseRow.__table__)
DOCUMENT = cast(Table, EvseDocumentRow.__table__)
STATUS = cast(Table, EvseStatusRow.__table__)
OPERATOR = cast(Table, EvseOperatorRow.__table__)
PULL = cast(Table, EvsePullRow.__table__)
#: What a read answers of each EVSE (``_stored`` reads them by name).
_STORED_COLUMNS = (
    EVSE.c.evse_key,
    EVSE.c.operator_key,
    EVSE.c.last_update,
    DOCUMENT.c.document,
    STATUS.c.major,
    STATUS.c.minor,
    STATUS.c.ttl,
)
#: Rows per statement when deleting by key (stays under SQLite's variable limit).
_CHUNK = 500
#: From this many records on, a PostgreSQL upsert is COPY into a staging table and one merge
#: per table: a CLM's page of 1,000 records as one multi-row INSERT is 33,000 literals for
#: SQLAlchemy to bind and the server to parse (persistence/bulk.py).
_COPY_FROM = 200
_STAGE_PREFIX = "gembus_staged_"
_DOC_COLUMNS = ("evse_key", "document")
_STORED_SQL = "SELECT evse_key FROM evse WHERE evse_key = ANY(%s)"


def _merge_sql(table: str, staged: str, columns: Sequence[str]) -> str:
    """Upsert the staged rows into ``table`` by evse_key (the staging table is emptied after).

    A row whose data is what is stored already is left alone (``updated_at`` then keeps the
    time of its last real change): a scheduled full pull brings every record again, most of
    them unchanged, and rewriting each (a new row version, an entry in every index, the
    document compressed again) would cost the database the whole set every time."""
    names = ", ".join(columns)
    changing = [c for c in columns if c not in ("evse_key", "updated_at")]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "evse_key")
    stored = ", ".join(f"{table}.{c}" for c in changing)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in changing)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged} "  # noqa: S608
        f"ON CONFLICT (evse_key) DO UPDATE SET {updates} "
        f"WHERE ({stored}) IS DISTINCT FROM ({incoming})"
    )


#: The columns of an ``evse`` row (the table's, but its id), in :func:`projected_row` order.
PROJECTED = (
    "evse_key",
    "evse_wire",
    "operator_key",
    "operator_wire",
    "country",
    "city_fold",
    "postal_code",
    "street_fold",
    "house_number",
    "latitude",
    "longitude",
    "cell",
    "plug_mask",
    "connector_mask",
    "mode_mask",
    "auth_mask",
    "payment_mask",
    "service_mask",
    "accessibility",
    "ac_kw",
    "dc_kw",
    "max_kw",
    "battery_swap",
    "reservable",
    "renewable",
    "dynamic_info",
    "static_status",
    "twentyfourseven",
    "hours_json",
    "last_update",
    "updated_at",
    "source",
)


def projection(record: EvseRecord, source: str, now: datetime) -> dict[str, Any]:
    """The ``evse`` row of a record: what Search EVSE filters on, derived once at write time."""
    return dict(zip(PROJECTED, projected_row(record, source, now), strict=True))


def projected_row(record: EvseRecord, source: str, now: datetime) -> tuple[Any, ...]:
    """:func:`projection` as a tuple in ``PROJECTED`` order (what COPY sends, no dict)."""
    a, hours = record.address, record.opening
    return (
        record.evse_id.key,
        record.evse_id.wire,
        record.operator_id.key,
        record.operator_id.wire,
        a.country,
        a.city.casefold(),
        a.postal_code,
        a.street.casefold() if a.street else None,
        a.house_number,
        record.latitude,
        record.longitude,
        grid_cell(record.latitude, record.longitude),
        mask(record.plugs, PLUGS),
        mask(record.connectors, CONNECTOR_STANDARDS),
        mask(record.charging_modes, CHARGING_MODES),
        mask(record.auth_modes, AUTH_MODES),
        mask(record.payment_options, PAYMENT_OPTIONS),
        mask(record.value_added_services, VALUE_ADDED_SERVICES),
        record.accessibility,
        *_powers(record),
        record.battery_swap,
        record.reservable,
        record.renewable,
        record.dynamic_info in ("true", "auto"),
        record.static_status,
        hours is not None and hours.twentyfourseven,
        hours_json(record),
        record.last_update,
        now,
        source,
    )


def _powers(record: EvseRecord) -> tuple[float | None, float | None, float | None]:
    """(ac_kw, dc_kw, max_kw): the highest power of that current, 0 for a facility of that
    current without a power, None without one; the highest of all (one pass: bulk writes)."""
    best: dict[str | None, float | None] = {"AC": None, "DC": None}
    highest = None
    for facility in record.facilities:
        current, power = facility.current, facility.power_kw
        if current is not None:
            best[current] = max(best[current] or 0.0, power or 0.0)
        if power is not None:
            highest = power if highest is None or power > highest else highest
    return best["AC"], best["DC"], highest


def hours_json(record: EvseRecord) -> str | None:
    """What "open now" needs, as JSON; None when the record has no opening times."""
    hours = record.opening
    if hours is None:
        return None
    return json.dumps(
        {
            "tz": record.address.time_zone,
            "status": record.static_status,
            "x": hours.twentyfourseven,
            "regular": [[d, b.isoformat(), e.isoformat()] for d, b, e in hours.regular],
            "open": [_period(p) for p in hours.exceptional_openings],
            "closed": [_period(p) for p in hours.exceptional_closings],
            "schedule": [[*_period(s.period), s.static_status] for s in record.schedule],
        }
    )


def _period(p: Period) -> list[str | None]:
    return [p.start.isoformat(), p.end.isoformat() if p.end else None]


def _unperiod(start: str, end: str | None) -> Period:
    return Period(datetime.fromisoformat(start), datetime.fromisoformat(end) if end else None)


def open_at(text: str, at: datetime) -> bool:
    """domain/charging/opening.py on the stored JSON of ``hours_json``."""
    data = json.loads(text)
    hours = OpeningTimes(
        data["x"],
        tuple((d, time.fromisoformat(b), time.fromisoformat(e)) for d, b, e in data["regular"]),
        tuple(_unperiod(*p) for p in data["open"]),
        tuple(_unperiod(*p) for p in data["closed"]),
    )
    schedule = tuple(ScheduledStatus(_unperiod(s, e), st) for s, e, st in data["schedule"])
    return is_open_at(hours, schedule, data["status"], data["tz"], at)


class SqlEvseRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _insert(self, table: Table) -> Any:
        dialect = postgresql if on_postgres(self.session) else sqlite
        return dialect.insert(table)

    # ----------------------------------------------------------------- master data

    def lock_operator(self, operator_key: str, operator_wire: str, now: datetime) -> None:
        """Upsert the operator's row: the row lock holds until the transaction ends."""
        stmt = self._insert(OPERATOR).values(
            operator_key=operator_key, operator_wire=operator_wire, last_write_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["operator_key"], set_={"last_write_at": now}
        )
        self.session.execute(stmt)

    def last_updates(self, evse_keys: Sequence[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for chunk in _chunks(list(evse_keys)):
            stmt = select(EVSE.c.evse_key, EVSE.c.last_update).where(EVSE.c.evse_key.in_(chunk))
            found.update((k, v) for k, v in self.session.execute(stmt))
        return found

    def upsert(self, records: Sequence[EvseRecord], source: str, now: datetime) -> None:
        if not records:
            return
        if len(records) >= _COPY_FROM and on_postgres(self.session):
            self._upsert_copied(records, source, now)
            return
        rows = [projection(r, source, now) for r in records]
        stmt = self._insert(EVSE).values(rows)
        columns = {c: stmt.excluded[c] for c in rows[0] if c != "evse_key"}
        self.session.execute(stmt.on_conflict_do_update(index_elements=["evse_key"], set_=columns))
        docs = [{"evse_key": r.evse_id.key, "document": r.document} for r in records]
        dstmt = self._insert(DOCUMENT).values(docs)
        self.session.execute(
            dstmt.on_conflict_do_update(
                index_elements=["evse_key"], set_={"document": dstmt.excluded.document}
            )
        )

    def _upsert_copied(self, records: Sequence[EvseRecord], source: str, now: datetime) -> None:
        """PostgreSQL: COPY the EVSEs not stored yet straight into the tables; the others
        into session-local staging tables, merged with one statement per table."""
        cursor = raw_cursor(self.session)
        cursor.execute(_STORED_SQL, ([r.evse_id.key for r in records],))
        stored = {key for (key,) in cursor.fetchall()}
        rows = [projected_row(r, source, now) for r in records]
        docs = [(r.evse_id.key, r.document) for r in records]
        for table, columns, values in ((EVSE, PROJECTED, rows), (DOCUMENT, _DOC_COLUMNS, docs)):
            copy_rows(cursor, table.name, columns, [v for v in values if v[0] not in stored])
            known = [v for v in values if v[0] in stored]  # evse_key comes first in both
            if known:
                staged = f"{_STAGE_PREFIX}{table.name}"
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {staged} AS "  # noqa: S608 - our own names
                    f"SELECT {', '.join(columns)} FROM {table.name} WITH NO DATA"
                )
                copy_rows(cursor, staged, columns, known)
                cursor.execute(_merge_sql(table.name, staged, columns))
                cursor.execute(f"TRUNCATE {staged}")

    def delete(self, evse_keys: Collection[str]) -> int:
        deleted = 0
        for chunk in _chunks(sorted(evse_keys)):
            for table in (STATUS, DOCUMENT):
                self.session.execute(delete(table).where(table.c.evse_key.in_(chunk)))
            result = self.session.execute(delete(EVSE).where(EVSE.c.evse_key.in_(chunk)))
            deleted += int(result.rowcount)  # type: ignore[attr-defined]
        return deleted

    def delete_operator_except(self, operator_key: str, keep: Collection[str]) -> int:
        stored = self.session.scalars(
            select(EVSE.c.evse_key).where(EVSE.c.operator_key == operator_key)
        )
        keeping = set(keep)
        return self.delete([k for k in stored if k not in keeping])

    # ----------------------------------------------------------------- reads

    def get(self, evse_keys: Sequence[str]) -> dict[str, StoredEvse]:
        found: dict[str, StoredEvse] = {}
        for chunk in _chunks(list(dict.fromkeys(evse_keys))):
            found.update(
                (row.evse_key, _stored(row)) for row in self.session.execute(_rows_of(chunk))
            )
        return found

    def statuses(self, evse_keys: Sequence[str]) -> dict[str, EvseStatus | None]:
        found: dict[str, EvseStatus | None] = {}
        for chunk in _chunks(list(dict.fromkeys(evse_keys))):
            stmt = (
                select(EVSE.c.evse_key, STATUS.c.major, STATUS.c.minor, STATUS.c.ttl)
                .select_from(EVSE.outerjoin(STATUS, STATUS.c.evse_key == EVSE.c.evse_key))
                .where(EVSE.c.evse_key.in_(chunk))
            )
            for row in self.session.execute(stmt):
                found[row.evse_key] = _status(row) if row.major is not None else None
        return found

    def reservable(self, evse_keys: Sequence[str]) -> dict[str, bool]:
        """The projection's reservable flag of each known EVSE (ReserveEvse checks it)."""
        found: dict[str, bool] = {}
        for chunk in _chunks(list(dict.fromkeys(evse_keys))):
            stmt = select(EVSE.c.evse_key, EVSE.c.reservable).where(EVSE.c.evse_key.in_(chunk))
            found.update((k, bool(v)) for k, v in self.session.execute(stmt))
        return found

    def set_statuses(self, statuses: Sequence[tuple[str, EvseStatus]], now: datetime) -> None:
        if not statuses:
            return
        rows = [
            {
                "evse_key": k,
                "major": s.major.value,
                "minor": s.minor,
                "ttl": s.ttl,
                "updated_at": now,
            }
            for k, s in statuses
        ]
        stmt = self._insert(STATUS).values(rows)
        set_ = {c: stmt.excluded[c] for c in ("major", "minor", "ttl", "updated_at")}
        self.session.execute(stmt.on_conflict_do_update(index_elements=["evse_key"], set_=set_))

    # ----------------------------------------------------------------- search

    def search(self, query: SearchQuery, now: datetime) -> tuple[list[Match], int]:
        near = _near_values(query) if on_postgres(self.session) else None
        if near is not None:
            found = self._search_near(near, query.offset)
            if found is not None:
                return found
        base, distance = _candidates(query, now)
        if query.management.open_now:
            return self._search_open_now(base, distance, query, now)
        order = _order(query, EVSE.c.evse_key, EVSE.c.operator_key, distance)
        page = (
            base.add_columns(func.count().over().label("total"))
            .order_by(*order)
            .limit(query.page_size)
            .offset(query.offset)
            .subquery()
        )
        rows = list(self.session.execute(_page(page, query)))
        if rows:
            return [Match(_stored(row), row.distance) for row in rows], int(rows[0].total)
        total = self.session.scalar(select(func.count()).select_from(base.subquery()))
        return [], int(total or 0)

    def _search_near(self, values: dict[str, Any], offset: int) -> tuple[list[Match], int] | None:
        """The prepared proximity statement; None for a page past the end (no total on it)."""
        connection = self.session.connection()
        name, sql = _near_statement(values["plugs"])
        if not connection.info.get(name):
            connection.exec_driver_sql(f"PREPARE {name} {sql}")
            connection.info[name] = True
        rows = connection.execute(_near_execute(name), values).all()
        if rows:
            return [Match(_stored(row), row.distance) for row in rows], int(rows[0].total)
        return ([], 0) if offset == 0 else None

    def _search_open_now(
        self, base: Select[Any], distance: Any, query: SearchQuery, now: datetime
    ) -> tuple[list[Match], int]:
        """Open now needs Python: fetch every candidate's hours, filter, then cut the page."""
        stmt = base.add_columns(EVSE.c.hours_json).where(EVSE.c.hours_json.is_not(None))
        order = _order(query, EVSE.c.evse_key, EVSE.c.operator_key, distance)
        rows = self.session.execute(stmt.order_by(*order))
        keys = [(r.evse_key, r.distance) for r in rows if open_at(r.hours_json, now)]
        window = keys[query.offset : query.offset + query.page_size]
        stored = self.get([k for k, _ in window])
        return [Match(stored[k], d) for k, d in window if k in stored], len(keys)

    # ----------------------------------------------------------------- uploads and pulls

    def upload_replay(self, partner_id: str, upload_key: str) -> tuple[str, str] | None:
        row = self.session.execute(
            select(EvseUploadRow.content_hash, EvseUploadRow.result).where(
                EvseUploadRow.partner_id == partner_id, EvseUploadRow.upload_key == upload_key
            )
        ).first()
        return (row.content_hash, row.result) if row else None

    def record_upload(
        self, partner_id: str, upload_key: str, content_hash: str, result: str, now: datetime
    ) -> None:
        """Keep the answer; a repeat of the key with other content overwrites it (a new upload)."""
        table = cast(Table, EvseUploadRow.__table__)
        stmt = self._insert(table).values(
            partner_id=partner_id,
            upload_key=upload_key,
            content_hash=content_hash,
            result=result,
            processed_at=now,
        )
        set_ = {c: stmt.excluded[c] for c in ("content_hash", "result", "processed_at")}
        self.session.execute(
            stmt.on_conflict_do_update(index_elements=["partner_id", "upload_key"], set_=set_)
        )

    def pull_state(self, operator_key: str) -> PullState | None:
        row = self.session.get(EvseOperatorRow, operator_key)
        if row is None:
            return None
        return PullState(
            row.operator_key,
            row.pull_last_attempt_at,
            row.pull_last_success_at,
            row.pull_last_full_at,
            row.pull_last_error,
            row.pull_records,
            row.pull_as_of,
        )

    def record_pull(self, state: PullState) -> None:
        values = {
            "pull_last_attempt_at": state.last_attempt_at,
            "pull_last_success_at": state.last_success_at,
            "pull_last_full_at": state.last_full_at,
            "pull_last_error": state.last_error,
            "pull_records": state.records,
            "pull_as_of": state.as_of,
        }
        result = self.session.execute(
            update(OPERATOR).where(OPERATOR.c.operator_key == state.operator_key).values(values)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            when = state.last_attempt_at or state.last_success_at
            assert when is not None, "a pull state records at least its attempt"
            self.session.execute(
                OPERATOR.insert().values(
                    operator_key=state.operator_key,
                    operator_wire=state.operator_key,
                    last_write_at=when,
                    **values,
                )
            )

    def record_pull_run(self, run: PullRun) -> int:
        values = {
            "operator_key": run.operator_key,
            "operator_wire": run.operator_wire,
            "partner_id": run.partner_id,
            "kind": run.kind.value,
            "trigger": run.trigger.value,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "outcome": run.outcome.value,
            "failure_kind": run.failure_kind,
            "fault_code": run.fault_code,
            "failure_detail": run.failure_detail,
            "received": run.received,
            "stored": run.stored,
            "deleted": run.deleted,
            "rejected": run.rejected,
            "as_of": run.as_of,
            "note": run.note,
            "rejections": run.rejections_json(),
        }
        return int(
            self.session.execute(PULL.insert().values(values).returning(PULL.c.id)).scalar_one()
        )

    def pull_runs(
        self, operator_key: str | None, page: tuple[int, int]
    ) -> tuple[list[PullRun], int]:
        offset, limit = page
        where = [PULL.c.operator_key == operator_key] if operator_key else []
        total = self.session.scalar(select(func.count()).select_from(PULL).where(*where))
        rows = self.session.execute(
            select(PULL)
            .where(*where)
            .order_by(PULL.c.started_at.desc(), PULL.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [_pull_run(row) for row in rows], int(total or 0)

    def last_pull_run(
        self, operator_key: str, kinds: Collection[PullKind], outcome: PullOutcome | None
    ) -> PullRun | None:
        stmt = select(PULL).where(
            PULL.c.operator_key == operator_key, PULL.c.kind.in_([k.value for k in kinds])
        )
        if outcome is not None:
            stmt = stmt.where(PULL.c.outcome == outcome.value)
        row = self.session.execute(
            stmt.order_by(PULL.c.started_at.desc(), PULL.c.id.desc()).limit(1)
        ).first()
        return _pull_run(row) if row is not None else None


def _pull_run(row: Any) -> PullRun:
    return PullRun(
        row.operator_key,
        row.operator_wire,
        row.partner_id,
        PullKind(row.kind),
        Trigger(row.trigger),
        row.started_at,
        row.finished_at,
        PullOutcome(row.outcome),
        received=row.received,
        stored=row.stored,
        deleted=row.deleted,
        rejected=row.rejected,
        as_of=row.as_of,
        failure_kind=row.failure_kind,
        fault_code=row.fault_code,
        failure_detail=row.failure_detail,
        note=row.note,
        rejections=rejections_from_json(row.rejections),
        run_id=row.id,
    )


# --------------------------------------------------------------------- query building

# The hot shape of Search EVSE (proximity, optionally plugs / connectors / charging modes and
# static statuses; everything the covering cell index holds) is one statement prepared once per
# PostgreSQL connection: no statement building in Python and no planning per request. It is
# _candidates + _page written out, with the same distance arithmetic (_haversine), so both
# paths answer alike; a mask of 0 means "not asked". Any other criterion takes _candidates.
_NEAR_NAME = "gembus_evse_near"
# The constants are _haversine's (2 * EARTH_RADIUS_KM, rad / 2, rad); "latitude + 0" keeps the
# generic plan off ix_evse_latitude (a bitmap AND with the cell index is 3x slower here).
_NEAR_SQL = """
(int[], float8, float8, float8, float8, float8, float8, float8, text[], int8, int8, int8,
 float8, int8, int8) AS
SELECT e.evse_key, e.operator_key, e.last_update, d.document, s.major, s.minor, s.ttl,
       p.distance, p.total
FROM (
    SELECT evse_key, distance, count(*) OVER () AS total
    FROM (
        SELECT evse_key, 12742.0176 * asin(sqrt(
            sin((latitude - $2) * 0.008726646259971648)
            * sin((latitude - $2) * 0.008726646259971648)
            + cos($4) * cos(latitude * 0.017453292519943295)
            * sin((longitude - $3) * 0.008726646259971648)
            * sin((longitude - $3) * 0.008726646259971648)
        )) AS distance
        FROM evse
        WHERE cell = ANY($1)
          AND latitude + 0 BETWEEN $5 AND $6
          AND longitude BETWEEN $7 AND $8
          AND static_status = ANY($9)
          AND ($10 = 0 OR plug_mask & $10 <> 0)
          AND ($11 = 0 OR connector_mask & $11 <> 0)
          AND ($12 = 0 OR mode_mask & $12 <> 0)
    ) AS candidate
    WHERE distance <= $13
    ORDER BY distance, evse_key
    LIMIT $14 OFFSET $15
) AS p
JOIN evse AS e ON e.evse_key = p.evse_key
JOIN evse_document AS d ON d.evse_key = p.evse_key
LEFT JOIN evse_status AS s ON s.evse_key = p.evse_key
ORDER BY p.distance, p.evse_key
"""
_PLUG_CLAUSE = "AND ($10 = 0 OR plug_mask & $10 <> 0)"
#: Mask of one plug with its own partial index (persistence/tables.py) -> its bit.
_INDEXED_BITS = {1 << PLUGS.index(plug): PLUGS.index(plug) for plug in INDEXED_PLUGS}


def _near_statement(plugs: int) -> tuple[str, str]:
    """(name, SQL) of the prepared proximity statement for this plug mask: one plug with a
    partial index of its own gets a statement that carries the index's predicate (a generic
    plan can only use a partial index whose predicate the statement itself implies)."""
    bit = _INDEXED_BITS.get(plugs)
    if bit is None:
        return _NEAR_NAME, _NEAR_SQL
    narrowed = f"{_PLUG_CLAUSE}\n          AND {plug_predicate(bit)}"
    return f"{_NEAR_NAME}_plug{bit}", _NEAR_SQL.replace(_PLUG_CLAUSE, narrowed)


class NearSearch:
    """Search EVSE's hot shape (see _NEAR_SQL) without a session: the prepared statement on a
    connection the worker thread keeps (persistence/fastpath.py PreparedQuery). The answers
    are SqlEvseRepository.search's; any other shape, or a page past the end (which needs the
    total from another statement), answers None and takes the repository."""

    def __init__(self, engine: Engine) -> None:
        self._query = PreparedQuery(engine)

    def __call__(self, query: SearchQuery) -> tuple[list[Match], int] | None:
        values = _near_values(query)
        if values is None:
            return None
        name, sql = _near_statement(values["plugs"])
        rows = self._query.rows(name, sql, _near_raw_execute(name), values)
        if not rows:
            return ([], 0) if query.offset == 0 else None
        return [_raw_match(row) for row in rows], int(rows[0][8])


def near_search(engine: Engine) -> NearSearch | None:
    """The fast proximity search where the database has the prepared statement (PostgreSQL)."""
    return NearSearch(engine) if engine.dialect.name == "postgresql" else None


def _raw_match(row: tuple[Any, ...]) -> Match:
    """A row of _NEAR_SQL as psycopg2 returns it (timestamps made UTC as UtcDateTime does)."""
    key, operator, last_update, document, major, minor, ttl, distance, _total = row
    status = (
        EvseStatus(Major(major), minor, ttl.astimezone(UTC) if ttl is not None else None)
        if major is not None
        else UNKNOWN
    )
    stored = StoredEvse(key, operator, document, last_update.astimezone(UTC), status)
    return Match(stored, distance)


@lru_cache(maxsize=len(INDEXED_PLUGS) + 1)
def _near_raw_execute(name: str) -> str:
    return (
        f"EXECUTE {name} (%(cells)s, %(lat)s, %(lon)s, %(lat_rad)s, %(south)s, %(north)s,"
        " %(west)s, %(east)s, %(statuses)s, %(plugs)s, %(connectors)s, %(modes)s, %(radius)s,"
        " %(limit)s, %(offset)s)"
    )


@lru_cache(maxsize=len(INDEXED_PLUGS) + 1)
def _near_execute(name: str) -> TextualSelect:
    return text(
        f"EXECUTE {name} (:cells, :lat, :lon, :lat_rad, :south, :north, :west, :east,"
        " :statuses, :plugs, :connectors, :modes, :radius, :limit, :offset)"
    ).columns(
        *_STORED_COLUMNS,
        column("distance", Float),
        column("total", Integer),
    )


def _near_values(query: SearchQuery) -> dict[str, Any] | None:
    """The prepared statement's values, or None when the query is not of its shape."""
    p, t, m = query.proximity, query.technical, query.management
    if (
        p is None
        or query.address is not None
        or query.operators != Operators()
        or t != Technical(plugs=t.plugs, connectors=t.connectors, charging_modes=t.charging_modes)
        or m != Management(static_statuses=m.static_statuses)
    ):
        return None
    box = bounding_box(p)
    cells = cells_for(box)
    if cells is None or box.wraps or (box.west, box.east) == (-180.0, 180.0):
        return None
    return {
        "cells": cells,
        "lat": p.latitude,
        "lon": p.longitude,
        "lat_rad": p.latitude * 0.017453292519943295,
        "south": box.south,
        "north": box.north,
        "west": box.west,
        "east": box.east,
        "statuses": sorted(m.static_statuses),
        "plugs": mask(t.plugs, PLUGS),
        "connectors": mask(t.connectors, CONNECTOR_STANDARDS),
        "modes": mask(t.charging_modes, CHARGING_MODES),
        "radius": p.radius_km,
        "limit": query.page_size,
        "offset": query.offset,
    }


def _candidates(query: SearchQuery, now: datetime) -> tuple[Select[Any], ColumnElement[Any]]:
    """(evse_key, operator_key, distance) of every match, and the distance expression (NULL
    without proximity). The distance appears in WHERE and SELECT: cheaper than a subquery."""
    conditions = [*_technical(query), *_operators(query), *_management(query, now)]
    conditions += _address(query)
    distance: ColumnElement[Any] = literal(None)
    if query.proximity is not None:
        geo, distance = _proximity(query)
        conditions += [*geo, distance <= query.proximity.radius_km]
    source = EVSE
    if query.management.available_now:
        source = EVSE.join(STATUS, STATUS.c.evse_key == EVSE.c.evse_key)  # type: ignore[assignment]
    stmt = select(EVSE.c.evse_key, EVSE.c.operator_key, distance.label("distance"))
    return stmt.select_from(source).where(*conditions), distance


def _order(query: SearchQuery, key: Any, operator: Any, distance: Any) -> list[Any]:
    """By distance with proximity, else by operator then EVSE (evse_search.xsd)."""
    return [distance, key] if query.proximity is not None else [operator, key]


def _page(page: Any, query: SearchQuery) -> Select[Any]:
    """The page's rows with their documents and stored status, in the page's order."""
    key = page.c.evse_key
    joined = (
        page.join(EVSE, EVSE.c.evse_key == key)
        .join(DOCUMENT, DOCUMENT.c.evse_key == key)
        .outerjoin(STATUS, STATUS.c.evse_key == key)
    )
    return (
        select(
            *_STORED_COLUMNS,
            page.c.distance,
            page.c.total,
        )
        .select_from(joined)
        .order_by(*_order(query, key, page.c.operator_key, page.c.distance))
    )


def _bits(column: Any, values: frozenset[str], universe: tuple[str, ...]) -> ColumnElement[bool]:
    return cast(ColumnElement[bool], column.op("&")(mask(values, universe)) != 0)


def _technical(query: SearchQuery) -> Iterator[ColumnElement[bool]]:
    t = query.technical
    if t.plugs:
        yield _bits(EVSE.c.plug_mask, t.plugs, PLUGS)
    if t.connectors:
        yield _bits(EVSE.c.connector_mask, t.connectors, CONNECTOR_STANDARDS)
    if t.charging_modes:
        yield _bits(EVSE.c.mode_mask, t.charging_modes, CHARGING_MODES)
    if t.value_added_services:
        yield _bits(EVSE.c.service_mask, t.value_added_services, VALUE_ADDED_SERVICES)
    power = {"AC": EVSE.c.ac_kw, "DC": EVSE.c.dc_kw, None: EVSE.c.max_kw}[t.current]
    if t.current is not None:
        yield power.is_not(None)
    if t.min_power_kw is not None:
        yield power >= t.min_power_kw
    if t.battery_exchange is not None:
        yield EVSE.c.battery_swap.is_(t.battery_exchange)
    if t.reservable is not None:
        yield EVSE.c.reservable.is_(t.reservable)


def _operators(query: SearchQuery) -> Iterator[ColumnElement[bool]]:
    o = query.operators
    if o.operator_keys:
        yield EVSE.c.operator_key.in_(sorted(o.operator_keys))
    if o.countries:
        yield EVSE.c.country.in_(sorted(o.countries))


def _management(query: SearchQuery, now: datetime) -> Iterator[ColumnElement[bool]]:
    m = query.management
    if m.auth_modes:
        yield _bits(EVSE.c.auth_mask, m.auth_modes, AUTH_MODES)
    if m.payment_options:
        yield _bits(EVSE.c.payment_mask, m.payment_options, PAYMENT_OPTIONS)
    if m.accessibility:
        yield EVSE.c.accessibility.in_(sorted(m.accessibility))
    if m.open_24_7:
        yield EVSE.c.twentyfourseven.is_(True)
    yield EVSE.c.static_status.in_(sorted(m.static_statuses))
    if m.renewable is not None:
        yield EVSE.c.renewable.is_(m.renewable)
    if m.dynamic_info is not None:
        yield EVSE.c.dynamic_info.is_(m.dynamic_info)
    if m.available_now:
        yield STATUS.c.major == Major.AVAILABLE.value
        yield or_(STATUS.c.ttl.is_(None), STATUS.c.ttl > now)


def _address(query: SearchQuery) -> Iterator[ColumnElement[bool]]:
    a = query.address
    if a is None:
        return
    if a.country:
        yield EVSE.c.country == a.country
    if a.city:
        yield EVSE.c.city_fold == a.city.casefold()
    if a.postal_code:
        yield EVSE.c.postal_code == a.postal_code
    if a.street:
        yield EVSE.c.street_fold.startswith(a.street.casefold(), autoescape=True)
    if a.house_number:
        yield EVSE.c.house_number == a.house_number


def _proximity(query: SearchQuery) -> tuple[list[ColumnElement[bool]], ColumnElement[float]]:
    """Index conditions (grid cells or latitude band + box) and the exact distance."""
    p = query.proximity
    assert p is not None
    box = bounding_box(p)
    geo: list[ColumnElement[bool]] = [EVSE.c.latitude.between(box.south, box.north)]
    cells = cells_for(box)
    if cells is not None:
        geo.append(EVSE.c.cell.in_(cells))
    if box.wraps:
        geo.append(or_(EVSE.c.longitude >= box.west, EVSE.c.longitude <= box.east))
    elif (box.west, box.east) != (-180.0, 180.0):
        geo.append(EVSE.c.longitude.between(box.west, box.east))
    return geo, _haversine(p.latitude, p.longitude)


def _haversine(lat: float, lon: float) -> ColumnElement[float]:
    """The same formula as domain/charging/search.py haversine_km, in SQL."""
    rad = 0.017453292519943295
    half_dlat = func.sin((EVSE.c.latitude - lat) * (rad / 2))
    half_dlon = func.sin((EVSE.c.longitude - lon) * (rad / 2))
    a = (
        half_dlat * half_dlat
        + func.cos(lat * rad) * func.cos(EVSE.c.latitude * rad) * half_dlon * half_dlon
    )
    return cast(ColumnElement[float], 2 * EARTH_RADIUS_KM * func.asin(func.sqrt(a)))


def _rows_of(keys: Any) -> Select[Any]:
    """Document, operator, last update and stored status of the EVSEs whose key is ``keys``."""
    return (
        select(*_STORED_COLUMNS)
        .select_from(
            EVSE.join(DOCUMENT, DOCUMENT.c.evse_key == EVSE.c.evse_key).outerjoin(
                STATUS, STATUS.c.evse_key == EVSE.c.evse_key
            )
        )
        .where(EVSE.c.evse_key.in_(keys))
    )


def _status(row: Any) -> EvseStatus:
    return EvseStatus(Major(row.major), row.minor, row.ttl)


def _stored(row: Any) -> StoredEvse:
    status = _status(row) if row.major is not None else UNKNOWN
    return StoredEvse(row.evse_key, row.operator_key, row.document, row.last_update, status)


def _match(row: Any) -> Match:
    return Match(_stored(row), row.distance)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
