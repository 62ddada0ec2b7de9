"""EVSE upload, status push and Search EVSE on both databases, through the in-process WSGI app.

Each search here is checked against domain/charging/search.py ``matches`` applied to every
stored record: the SQL (bit masks, grid cells, SQL haversine) must agree with the rules in
plain Python, on PostgreSQL and on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import text

from domain.charging.master_data import Action, apply_records
from domain.charging.model import PLUGS, EvseRecord
from domain.charging.search import (
    AddressCriteria,
    Management,
    Operators,
    Proximity,
    SearchQuery,
    Technical,
    haversine_km,
    matches,
)
from domain.identifiers import OperatorId
from domain.pubsub import Topic, subscribe
from endpoints.evse_types import read_record
from gembus.bootstrap import Gembus
from persistence.evse import NearSearch, _near_statement, _near_values
from persistence.tables import INDEXED_PLUGS
from tests.integration.conftest import built_gembus
from tests.support.evse import LAST_UPDATE, Spec, random_specs, record_xml
from tests.support.soap import WsgiResult, call, envelope, wsse_header

ICE = ("ice-charging", "demo-operator-password")
BMW = ("bmw-emobility", "demo-evsp2-password")
NAVI = ("navi-search", "demo-search-password")
U = "urn:gembus:evse-upload:v1"
P = "urn:gembus:evse-status-push:v1"
S = "urn:gembus:evse-search:v1"
EV = "urn:gembus:evse:v1"
CMN = "urn:gembus:common:v1"
NOW = datetime.now(UTC)


def soap(app: Any, family: str, op: str, body: str, who: tuple[str, str]) -> WsgiResult:
    ns = {"evse_upload": U, "evse_status_push": P, "evse_search": S}[family]
    return call(
        app, envelope(body, wsse_header(*who)), path=f"/services/{family}", action=f"{ns}/{op}"
    )


def upload(
    app: Any, who: tuple[str, str], operator: str, action: str, specs: list[Spec]
) -> etree._Element:
    records = "".join(record_xml(s) for s in specs)
    body = (
        f'<u:UploadEvseData xmlns:u="{U}" xmlns:ev="{EV}" xmlns:cmn="{CMN}">'
        f"<u:operatorId>{operator}</u:operatorId><u:actionType>{action}</u:actionType>"
        f"<u:evses>{records}</u:evses></u:UploadEvseData>"
    )
    result = soap(app, "evse_upload", "UploadEvseData", body, who)
    assert result.status == 200, result.text
    return etree.fromstring(result.body)


def results(root: etree._Element) -> list[tuple[str, str, str | None]]:
    return [
        (
            r.findtext(f"{{{EV}}}evseId") or "",
            r.findtext(f"{{{EV}}}result") or "",
            r.findtext(f"{{{EV}}}reason"),
        )
        for r in root.iter(f"{{{U}}}recordResult", f"{{{P}}}recordResult")
    ]


def parsed(spec: Spec) -> EvseRecord:
    """The record as the upload endpoint reads it."""
    element = etree.fromstring(
        record_xml(spec, f'u:evse xmlns:u="{U}" xmlns:ev="{EV}" xmlns:cmn="{CMN}"')
    )
    record = read_record(element)
    assert isinstance(record, EvseRecord)
    return record


def evse_count(gembus: Gembus, operator_key: str) -> int:
    with gembus.engine.connect() as c:
        return int(
            c.execute(
                text("SELECT count(*) FROM evse WHERE operator_key = :o"), {"o": operator_key}
            ).scalar_one()
        )


def test_upload_rejects_another_operators_evse_and_stores_the_rest(gembus: Gembus) -> None:
    own = Spec("DE*ICE*E1*1", "DE*ICE", 52.52, 13.40)
    foreign = Spec("DE*BMW*E1*1", "DE*BMW", 52.52, 13.41)
    root = upload(gembus.app, ICE, "DE*ICE", "insert", [own, foreign])
    assert results(root) == [
        ("DE*ICE*E1*1", "accepted", None),
        ("DE*BMW*E1*1", "rejected", "EvseInconsistent"),
    ]
    assert evse_count(gembus, "DEICE") == 1 and evse_count(gembus, "DEBMW") == 0


def test_operator_id_of_another_partner_is_a_caller_mismatch(gembus: Gembus) -> None:
    body = (
        f'<u:UploadEvseData xmlns:u="{U}" xmlns:ev="{EV}" xmlns:cmn="{CMN}"><u:operatorId>DE*BMW</u:operatorId>'
        f"<u:actionType>insert</u:actionType><u:evses>{record_xml(Spec('DE*BMW*E9', 'DE*BMW', 50.0, 8.0))}</u:evses></u:UploadEvseData>"
    )
    assert (
        soap(gembus.app, "evse_upload", "UploadEvseData", body, ICE).fault_code()
        == "Client.CallerMismatch"
    )


def test_full_load_replaces_the_set_and_keeps_rejected_records(gembus: Gembus) -> None:
    first = [Spec(f"DE*ICE*E{n}", "DE*ICE", 52.5, 13.4 + n / 100) for n in range(1, 5)]
    upload(gembus.app, ICE, "DE*ICE", "fullLoad", first)
    stale = Spec("DE*ICE*E2", "DE*ICE", 52.5, 13.4, last_update=datetime(2020, 1, 1, tzinfo=UTC))
    root = upload(
        gembus.app,
        ICE,
        "DE*ICE",
        "fullLoad",
        [first[0], stale, Spec("DE*ICE*E9", "DE*ICE", 52.6, 13.5)],
    )
    assert [r[2] for r in results(root)] == [None, "StaleRecord", None]
    assert root.findtext(f".//{{{U}}}deletedByFullLoad") == "2"  # E3 and E4; E2 keeps its version
    with gembus.engine.connect() as c:
        keys = c.execute(text("SELECT evse_key FROM evse ORDER BY evse_key")).scalars().all()
    assert keys == ["DEICEE1", "DEICEE2", "DEICEE9"]


def test_full_load_is_atomic_when_the_transaction_fails(gembus: Gembus) -> None:
    upload(gembus.app, ICE, "DE*ICE", "fullLoad", [Spec("DE*ICE*E1", "DE*ICE", 52.5, 13.4)])
    operator = OperatorId.parse("DE*ICE")
    new = [parsed(Spec("DE*ICE*E7", "DE*ICE", 52.5, 13.4))]
    with pytest.raises(RuntimeError), gembus.uow() as uow:
        outcome = apply_records(uow, operator, Action.FULL_LOAD, new, NOW)
        assert outcome.deleted_by_full_load == 1
        raise RuntimeError("the connection broke before COMMIT")
    with gembus.engine.connect() as c:
        assert c.execute(text("SELECT evse_key FROM evse")).scalars().all() == ["DEICEE1"]


def test_replayed_upload_returns_the_stored_answer(gembus: Gembus) -> None:
    spec = Spec("DE*ICE*E5", "DE*ICE", 52.5, 13.4)
    first = upload(gembus.app, ICE, "DE*ICE", "insert", [spec])
    again = upload(gembus.app, ICE, "DE*ICE", "insert", [spec])
    assert (
        first.findtext(f".//{{{U}}}replayed") == "false"
        and again.findtext(f".//{{{U}}}replayed") == "true"
    )
    assert results(again) == [("DE*ICE*E5", "accepted", None)]  # not DuplicateEvse: a replay


def push(
    app: Any,
    who: tuple[str, str],
    operator: str,
    rows: list[tuple[str, str, str | None, datetime | None]],
) -> etree._Element:
    items = "".join(
        f"<p:evseStatus><ev:evseId>{e}</ev:evseId><ev:major>{major}</ev:major>"
        + (f"<ev:minor>{minor}</ev:minor>" if minor else "")
        + (f"<ev:ttl>{ttl.isoformat()}</ev:ttl>" if ttl else "")
        + "</p:evseStatus>"
        for e, major, minor, ttl in rows
    )
    body = f'<p:PushEvseStatus xmlns:p="{P}" xmlns:ev="{EV}"><p:operatorId>{operator}</p:operatorId>{items}</p:PushEvseStatus>'
    result = soap(app, "evse_status_push", "PushEvseStatus", body, who)
    assert result.status == 200, result.text
    return etree.fromstring(result.body)


def test_status_push_rules_and_outbox(gembus: Gembus) -> None:
    upload(gembus.app, ICE, "DE*ICE", "insert", [Spec("DE*ICE*E1", "DE*ICE", 52.5, 13.4)])
    with gembus.uow() as uow:  # a subscriber, so that publishing leaves outbox rows
        evsp = uow.partners.get("tnm-mobility")
        assert evsp is not None
        sub = subscribe(uow, evsp, Topic.EVSE_STATUS_CHANGED, "http://127.0.0.1:9/n", None, NOW)
        uow.commit()
    now = datetime.now(UTC)  # not the module's NOW: a ttl is judged against the real clock
    soon = now + timedelta(minutes=5)
    root = push(
        gembus.app,
        ICE,
        "DE*ICE",
        [
            ("DE*ICE*E1", "available", "charging", soon),
            ("DE*ICE*E1", "available", "available", soon),
            ("DE*ICE*E404", "available", None, soon),
            ("DE*BMW*E1", "available", None, soon),
            ("DE*ICE*E1", "available", None, now - timedelta(minutes=1)),
        ],
    )
    assert [r[2] for r in results(root)] == [
        "InvalidStatusPair",
        None,
        "UnknownEvse",
        "EvseInconsistent",
        "DuplicateInBatch",
    ]
    assert queued(gembus, sub.subscription_id) == 1  # the one accepted change, once
    push(gembus.app, ICE, "DE*ICE", [("DE*ICE*E1", "available", "available", soon)])
    assert queued(gembus, sub.subscription_id) == 1  # unchanged: nothing to tell


def queued(gembus: Gembus, subscription_id: str) -> int:
    with gembus.engine.connect() as c:
        query = text("SELECT count(*) FROM outbox WHERE subscription_id = :s")
        return int(c.execute(query, {"s": subscription_id}).scalar_one())


def test_expired_status_reads_as_unknown(gembus: Gembus) -> None:
    upload(gembus.app, ICE, "DE*ICE", "insert", [Spec("DE*ICE*E1", "DE*ICE", 52.5, 13.4)])
    now = datetime.now(UTC)  # a ttl is judged against the real clock
    pushed = push(
        gembus.app,
        ICE,
        "DE*ICE",
        [("DE*ICE*E1", "not-available", "charging", now + timedelta(minutes=5))],
    )
    assert [r[2] for r in results(pushed)] == [None]  # accepted: a live status is stored
    with gembus.engine.begin() as c:  # time passes: move the ttl into the past
        moved = c.execute(
            text("UPDATE evse_status SET ttl = :t"), {"t": now - timedelta(seconds=1)}
        )
    assert moved.rowcount == 1
    body = f'<s:GetEvseStatusById xmlns:s="{S}"><s:evseId>DE*ICE*E1</s:evseId><s:evseId>DE*ICE*E2</s:evseId></s:GetEvseStatusById>'
    root = etree.fromstring(soap(gembus.app, "evse_search", "GetEvseStatusById", body, NAVI).body)
    assert [e.findtext(f".//{{{EV}}}major") for e in root.iter(f"{{{S}}}evseStatus")] == [
        "unknown",
        None,
    ]
    assert [e.findtext(f"{{{EV}}}result") for e in root.iter(f"{{{S}}}evseStatus")] == [
        "found",
        "notFound",
    ]


QUERIES = [
    SearchQuery(technical=Technical(plugs=frozenset({"CCS Combo 2 Plug (Cable Attached)"}))),
    SearchQuery(technical=Technical(current="DC", min_power_kw=100.0)),
    SearchQuery(technical=Technical(battery_exchange=True)),
    SearchQuery(technical=Technical(charging_modes=frozenset({"CHAdeMO"}), reservable=True)),
    SearchQuery(operators=Operators(frozenset({"DEBMW"}), frozenset({"PL"}))),
    SearchQuery(
        management=Management(
            auth_modes=frozenset({"Remote"}), payment_options=frozenset({"Direct"})
        )
    ),
    SearchQuery(
        management=Management(accessibility=frozenset({"Restricted access"}), open_24_7=True)
    ),
    SearchQuery(
        management=Management(open_now=True, static_statuses=frozenset({"Operative", "Closed"}))
    ),
    SearchQuery(address=AddressCriteria(country="DE", city="potsdam", street="bahnhof")),
    SearchQuery(address=AddressCriteria(postal_code="70-001")),
    SearchQuery(proximity=Proximity(52.52, 13.40, 10.0)),
    SearchQuery(
        technical=Technical(plugs=frozenset({"CCS Combo 2 Plug (Cable Attached)"})),
        management=Management(static_statuses=frozenset({"Operative", "Planned"})),
        proximity=Proximity(52.52, 13.40, 25.0),
        page=2,
        page_size=4,
    ),
    SearchQuery(
        technical=Technical(connectors=frozenset({"IEC_62196_T2"})),
        proximity=Proximity(52.52, 13.40, 25.0),
        page=50,
        page_size=5,
    ),
    SearchQuery(
        technical=Technical(plugs=frozenset({"Type 2 Outlet"})),
        management=Management(auth_modes=frozenset({"RfidMifareDes"})),
        address=AddressCriteria(city="Berlin"),
        proximity=Proximity(52.52, 13.40, 25.0),
        page=2,
        page_size=5,
    ),
]


@pytest.mark.parametrize("query", QUERIES)
def test_search_agrees_with_the_rules_in_python(gembus: Gembus, query: SearchQuery) -> None:
    specs = random_specs(("DE*ICE", "DE*BMW"), 120)
    upload(gembus.app, ICE, "DE*ICE", "insert", [s for s in specs if s.operator == "DE*ICE"])
    upload(gembus.app, BMW, "DE*BMW", "insert", [s for s in specs if s.operator == "DE*BMW"])
    records = [parsed(s) for s in specs]
    with gembus.uow() as uow:
        found, total = uow.evses.search(query, NOW)
    expected = [r for r in records if matches(r, query, NOW)]
    p = query.proximity
    if p is not None:
        expected.sort(
            key=lambda r: (
                haversine_km(p.latitude, p.longitude, r.latitude, r.longitude),
                r.evse_id.key,
            )
        )
    else:
        expected.sort(key=lambda r: (r.operator_id.key, r.evse_id.key))
    window = expected[query.offset : query.offset + query.page_size]
    assert total == len(expected) and total > 0
    assert [m.evse.evse_key for m in found] == [r.evse_id.key for r in window]
    if p is not None:
        for m, r in zip(found, window, strict=True):
            assert m.distance_km == pytest.approx(
                haversine_km(p.latitude, p.longitude, r.latitude, r.longitude), abs=1e-6
            )


@pytest.fixture
def pg_gembus(postgres_url: str) -> Iterator[Gembus]:
    yield from built_gembus(postgres_url)


def _stored(gembus: Gembus) -> list[EvseRecord]:
    specs = random_specs(("DE*ICE", "DE*BMW"), 120)
    upload(gembus.app, ICE, "DE*ICE", "insert", [s for s in specs if s.operator == "DE*ICE"])
    upload(gembus.app, BMW, "DE*BMW", "insert", [s for s in specs if s.operator == "DE*BMW"])
    return [parsed(s) for s in specs]


CCS2 = "CCS Combo 2 Plug (Cable Attached)"
NEAR = [
    SearchQuery(technical=Technical(plugs=frozenset({CCS2})), proximity=Proximity(52.52, 13.4, 30)),
    SearchQuery(
        technical=Technical(plugs=frozenset({"CHAdeMO"}), charging_modes=frozenset({"Mode_4"})),
        proximity=Proximity(52.52, 13.40, 40.0),
        page_size=3,
    ),
    SearchQuery(
        technical=Technical(plugs=frozenset({CCS2, "Type 2 Outlet"})),
        management=Management(static_statuses=frozenset({"Operative"})),
        proximity=Proximity(52.52, 13.40, 25.0),
        page=2,
        page_size=4,
    ),
    SearchQuery(proximity=Proximity(52.52, 13.40, 10.0), page=400),
]


@pytest.mark.parametrize("query", NEAR)
def test_sessionless_proximity_search_answers_as_the_rules(
    pg_gembus: Gembus, query: SearchQuery
) -> None:
    """The fast path gembus.bootstrap builds on PostgreSQL (persistence/evse.py NearSearch)
    finds what the rules in Python find; a page past the end is left to the repository."""
    records = _stored(pg_gembus)
    assert pg_gembus.services is not None and pg_gembus.services.near_search is not None
    p = query.proximity
    assert p is not None
    expected = sorted(
        (r for r in records if matches(r, query, NOW)),
        key=lambda r: (
            haversine_km(p.latitude, p.longitude, r.latitude, r.longitude),
            r.evse_id.key,
        ),
    )
    found = pg_gembus.services.near_search(query)
    window = expected[query.offset : query.offset + query.page_size]
    if not window:
        assert found is None and expected  # past the end: the repository counts
        return
    assert found is not None
    matched, total = found
    assert total == len(expected)
    assert [m.evse.evse_key for m in matched] == [r.evse_id.key for r in window]
    assert all(m.evse.last_update.tzinfo is UTC for m in matched)


def test_sessionless_search_reconnects_when_its_connection_was_cut(pg_gembus: Gembus) -> None:
    """The connection the worker keeps may die while it idles (a database restart): the read
    is tried again on a new one instead of failing the partner's search."""
    _stored(pg_gembus)
    assert pg_gembus.services is not None
    fast = pg_gembus.services.near_search
    assert isinstance(fast, NearSearch)
    before = fast(NEAR[0])
    held = fast._query._local.connection[0]
    with pg_gembus.engine.connect() as connection:
        connection.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": held.get_backend_pid()}
        )
    assert fast(NEAR[0]) == before and before is not None and before[1] > 0
    assert fast._query._local.connection[0] is not held


def test_a_bulk_upsert_rewrites_only_the_records_that_changed(pg_gembus: Gembus) -> None:
    """PostgreSQL's COPY + merge path (a CLM page): every changed record is stored, and a row
    whose data is unchanged keeps its row version and the time of its last real change."""
    specs = random_specs(("DE*ICE",), 260, seed=3)
    first, second = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    with pg_gembus.uow() as uow:
        uow.evses.upsert([parsed(s) for s in specs], "pull", first)
        uow.commit()
    moved = replace(specs[5], lat=specs[5].lat + 0.01, last_update=LAST_UPDATE + timedelta(days=1))
    again = [moved if i == 5 else s for i, s in enumerate(specs)]
    with pg_gembus.engine.connect() as c:
        versions = dict(c.execute(text("SELECT evse_key, xmin::text FROM evse")).all())
    with pg_gembus.uow() as uow:
        uow.evses.upsert([parsed(s) for s in again], "pull", second)
        uow.commit()
    with pg_gembus.engine.connect() as c:
        rows = {
            key: (xmin, latitude, updated_at)
            for key, xmin, latitude, updated_at in c.execute(
                text("SELECT evse_key, xmin::text, latitude, updated_at FROM evse")
            )
        }
        document = c.execute(
            text("SELECT document FROM evse_document WHERE evse_key = :k"),
            {"k": parsed(moved).evse_id.key},
        ).scalar_one()
    key = parsed(moved).evse_id.key
    assert rows[key][1] == pytest.approx(moved.lat) and rows[key][2] == second
    assert rows[key][0] != versions[key] and parsed(moved).document == document
    unchanged = [k for k in rows if k != key]
    assert len(unchanged) == 259
    assert all(rows[k][0] == versions[k] and rows[k][2] == first for k in unchanged)


def test_a_search_for_one_fast_charging_plug_can_read_its_own_index(pg_gembus: Gembus) -> None:
    """The prepared statement for one indexed plug carries the partial index's predicate, so
    the planner may read that index (a statement that does not imply it never can)."""
    _stored(pg_gembus)
    query = NEAR[0]
    values = _near_values(query)
    assert values is not None
    name, sql = _near_statement(values["plugs"])
    assert name == "gembus_evse_near_plug15"
    assert _near_statement(values["plugs"] | 1) == ("gembus_evse_near", _near_statement(0)[1])
    assert len({_near_statement(1 << PLUGS.index(p))[0] for p in INDEXED_PLUGS}) == 4
    args = ", ".join(f":{k}" for k in values)
    with pg_gembus.engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")  # 120 rows: a scan would win
        connection.exec_driver_sql("SET enable_bitmapscan = off")
        connection.exec_driver_sql(f"PREPARE probe {sql}")
        plan = "\n".join(
            connection.execute(text(f"EXPLAIN EXECUTE probe ({args})"), values).scalars()
        )
    assert "ix_evse_cell_plug15" in plan, plan


def test_migration_0009_mirrors_the_tables(gembus: Gembus) -> None:
    """The charging tables, columns and indexes of persistence/tables.py are what 0009 creates."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from persistence.tables import Base

    ours = {"evse", "evse_document", "evse_status", "evse_operator", "evse_upload"}
    with gembus.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    def touches_ours(item: Any) -> bool:
        change = item[0] if isinstance(item, list) else item
        for part in change[1:]:
            table = getattr(part, "table", None)
            name = getattr(table, "name", None) or getattr(part, "name", None)
            if (isinstance(part, str) and part in ours) or name in ours:
                return True
        return False

    assert [d for d in diff if touches_ours(d)] == []
