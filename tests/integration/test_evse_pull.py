"""Pulls from an operator's CLM into storage, on PostgreSQL and SQLite.

The CLM is the real spyne fake of tests/fakes/clm_data.py (120 EVSEs of DE*ICE, pages of at
most 50) served from a thread; ice-charging publishes its two services on the marketplace,
and gembus finds them there, as in production. Each test compares what is stored with what
the CLM holds, read from the fake's own state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select, text

from domain.charging.master_data import PullState, Reason
from domain.charging.pull import Puller, PullInProgressError, PullKind, PullOutcome, Trigger
from domain.identifiers import OperatorId
from domain.pubsub import Topic, subscribe
from gembus.bootstrap import Gembus
from gembus.errors import NotFoundError
from gembus.evse_pull import RegistryDirectory, build_puller
from persistence.engine import make_engine, make_session_factory
from persistence.evse import DOCUMENT, EVSE
from persistence.leases import AdvisoryLeases
from persistence.unit_of_work import SqlUnitOfWork
from tests.fakes.clm_data import (
    MASTERDATA_PATH,
    ClmDataApp,
    make_clm_data_app,
)
from tests.fakes.common import RunningFake, read_log, serve
from tests.support.marketplace import partner, published_clm
from tests.support.soap import call, envelope, wsse_header

ICE = OperatorId.parse("DE*ICE")
S = "urn:gembus:evse-search:v1"
EV = "urn:gembus:evse:v1"


@dataclass
class Clm:
    app: ClmDataApp
    running: RunningFake

    @property
    def state(self) -> Any:
        return self.app.state

    def evses(self) -> dict[str, datetime]:
        """What the CLM holds: EVSE key -> lastUpdate."""
        return {key(i): s.last_update for i, s in self.state.evses.items()}


def key(evse_id: str) -> str:
    return evse_id.replace("*", "").upper()


@pytest.fixture
def clm(tmp_path: Path) -> Iterator[Clm]:
    app = make_clm_data_app("DE*ICE", 120, max_page_size=50, log_path=str(tmp_path / "clm.jsonl"))
    with serve(app, path=MASTERDATA_PATH) as running:
        yield Clm(app, running)


@pytest.fixture
def published(gembus: Gembus, clm: Clm) -> Gembus:
    """ice-charging's CLM services published on the marketplace, the outbox empty."""
    published_clm(gembus.uow, partner(gembus.uow, "ice-charging"), clm.running.base_url)
    with gembus.engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox"))
        connection.execute(text("DELETE FROM subscription"))
    return gembus


def puller(gembus: Gembus, *, timeout_s: float = 5.0, read_ahead: int | None = None) -> Puller:
    built = build_puller(
        gembus.session_factory,
        gembus.engine,
        replace(gembus.settings, clm_pull_timeout_s=timeout_s),
    )
    if read_ahead is not None:
        assert isinstance(built.directory, RegistryDirectory)
        built.directory.read_ahead = read_ahead
    return built


def _rows(*columns: Any) -> Any:
    joined = EVSE.join(DOCUMENT, DOCUMENT.c.evse_key == EVSE.c.evse_key)
    return (
        select(EVSE.c.evse_key, *columns)
        .select_from(joined)
        .where(EVSE.c.operator_key == "DEICE")
        .order_by(EVSE.c.evse_key)
    )


def stored(gembus: Gembus) -> dict[str, datetime]:
    """What gembus holds of DE*ICE: EVSE key -> lastUpdate (each with its document)."""
    with gembus.engine.connect() as c:
        return {row.evse_key: row.last_update for row in c.execute(_rows(EVSE.c.last_update))}


def snapshot(gembus: Gembus) -> list[tuple[Any, ...]]:
    """Every stored row of the operator's EVSEs, documents included, to compare before/after."""
    columns = (EVSE.c.last_update, EVSE.c.static_status, EVSE.c.updated_at, DOCUMENT.c.document)
    with gembus.engine.connect() as c:
        return [tuple(row) for row in c.execute(_rows(*columns))]


def test_full_pull_stores_exactly_the_clms_set(published: Gembus, clm: Clm) -> None:
    progress: list[tuple[int, int | None]] = []
    run = puller(published).pull_master_data(ICE, progress=lambda n, t: progress.append((n, t)))
    assert run.ok and run.kind is PullKind.FULL and run.trigger is Trigger.CLI
    assert (run.received, run.stored, run.deleted, run.rejected) == (120, 120, 0, 0)
    assert stored(published) == clm.evses()
    assert progress == [(50, 120), (100, 120), (120, 120)]
    with published.uow() as uow:
        state = uow.evses.pull_state("DEICE")
        runs, total = uow.evses.pull_runs("DEICE", (0, 10))
        document = uow.evses.get(["DEICEE0000007"])["DEICEE0000007"].document
    assert state is not None and state.as_of == run.as_of and state.last_error is None
    assert state.last_full_at == state.last_success_at == run.finished_at and state.records == 120
    assert total == 1 and runs[0] == run
    record = etree.fromstring(document)
    assert record.findtext(f"{{{EV}}}evseId") == "DE*ICE*E0000007"


def test_a_delta_brings_storage_to_the_clms_state(published: Gembus, clm: Clm) -> None:
    pulls = puller(published)
    first = pulls.pull_master_data(ICE)
    done = clm.state.change(["DE*ICE*E0000010", "DE*ICE*E0000011"], ["DE*ICE*E0000012"], 55)
    run = pulls.pull_master_data(ICE)
    assert run.ok and run.kind is PullKind.DELTA
    assert (run.received, run.stored, run.deleted, run.rejected) == (58, 57, 1, 0)
    assert stored(published) == clm.evses() and len(clm.evses()) == 174
    assert key(done["updated"][0]) in stored(published)
    assert run.as_of is not None and first.as_of is not None and run.as_of > first.as_of
    again = pulls.pull_master_data(ICE)
    assert again.kind is PullKind.DELTA and again.received == 0 and stored(published) == clm.evses()


def test_records_of_another_operator_are_rejected_the_rest_stored(
    published: Gembus, clm: Clm
) -> None:
    pulls = puller(published)
    clm.state.change([], [], 0, {"DE*ICE*E0000005": "DE*BMW"})  # a CLM sending DE*BMW*E0000005
    run = pulls.pull_master_data(ICE)
    assert run.ok and (run.received, run.stored, run.rejected) == (120, 119, 1)
    assert [(r.evse_wire, r.reason) for r in run.rejections] == [
        ("DE*BMW*E0000005", Reason.EVSE_INCONSISTENT)
    ]
    assert set(stored(published)) == set(clm.evses()) - {"DEICEE0000005"}
    clm.state.change([], [], 0, {"DE*ICE*E0000006": "DE*BMW"})
    delta = pulls.pull_master_data(ICE)  # the change names DE*ICE*E0000006, its record not
    assert delta.kind is PullKind.DELTA and (delta.stored, delta.rejected) == (0, 1)
    assert delta.rejections[0].reason is Reason.EVSE_INCONSISTENT
    with published.uow() as uow:
        listed, _ = uow.evses.pull_runs(None, (0, 10))
    assert [r.rejections for r in listed] == [delta.rejections, run.rejections]


FAILURES = [
    ("garbage", "not_xml"),
    ("schema_invalid", "schema_invalid"),
    ("fault", "fault"),
    ("http500", "http_error"),
    ("slow", "timeout"),
    ("down", "unreachable"),
]


@pytest.mark.parametrize(("mode", "kind"), FAILURES)
def test_a_clm_failing_at_page_3_leaves_storage_untouched(
    published: Gembus, clm: Clm, mode: str, kind: str
) -> None:
    pulls = puller(published, timeout_s=1.0, read_ahead=0 if mode == "down" else None)
    good = pulls.pull_master_data(ICE)
    before = snapshot(published)
    clm.state.change(["DE*ICE*E0000001"], ["DE*ICE*E0000002"], 3)  # what a pull would store

    def goes_down(received: int, total: int | None) -> None:
        if received == 100:  # pages 1 and 2 are stored (uncommitted): the CLM goes away
            clm.running.stop()

    if mode != "down":
        clm.state.set_mode(mode, delay_s=3.0, after=2)  # pages 1 and 2 answer, page 3 does not
    run = pulls.pull_master_data(ICE, full=True, progress=goes_down if mode == "down" else None)
    assert not run.ok and run.kind is PullKind.FULL and run.failure_kind == kind
    assert snapshot(published) == before
    assert (run.stored, run.deleted, run.rejected) == (0, 0, 0)
    assert "page 3" in (run.failure_detail or "") and run.received == 100
    if mode == "fault":
        assert run.fault_code == "Server.Unavailable"
    with published.uow() as uow:
        state = uow.evses.pull_state("DEICE")
        last = uow.evses.last_pull_run("DEICE", (PullKind.FULL, PullKind.DELTA), None)
        last_ok = uow.evses.last_pull_run("DEICE", (PullKind.FULL,), PullOutcome.OK)
    assert last == run and last_ok == good
    assert state is not None and state.last_error is not None and state.last_error.startswith(kind)
    assert state.as_of == good.as_of and state.last_success_at == good.finished_at
    assert state.last_attempt_at == run.started_at


def test_a_delta_failing_midway_leaves_storage_untouched(published: Gembus, clm: Clm) -> None:
    pulls = puller(published)
    pulls.pull_master_data(ICE)
    before = snapshot(published)
    clm.state.change([], ["DE*ICE*E0000003"], 80)  # 81 changes: 2 pages
    clm.state.set_mode("garbage", after=1)
    run = pulls.pull_master_data(ICE)
    assert run.kind is PullKind.DELTA and run.failure_kind == "not_xml"
    assert snapshot(published) == before
    clm.state.set_mode("ok")
    retry = pulls.pull_master_data(ICE)  # the same changes, since the same mark
    assert retry.ok and retry.kind is PullKind.DELTA and stored(published) == clm.evses()


def test_no_delta_available_means_a_full_pull_that_says_so(published: Gembus, clm: Clm) -> None:
    with published.uow() as uow:  # a mark older than the CLM's change history
        uow.evses.lock_operator("DEICE", "DE*ICE", datetime.now(UTC))
        uow.evses.record_pull(PullState("DEICE", as_of=datetime(2001, 1, 1, tzinfo=UTC)))
        uow.commit()
    run = puller(published).pull_master_data(ICE)
    assert run.ok and run.kind is PullKind.FULL and run.stored == 120
    assert run.note is not None and "Client.DeltaNotAvailable" in run.note
    assert stored(published) == clm.evses()


def test_an_expired_snapshot_restarts_the_full_read(published: Gembus, clm: Clm) -> None:
    changed: list[int] = []

    def meanwhile(received: int, total: int | None) -> None:
        if not changed:  # after page 1: the CLM's data changes under the read
            changed.append(received)
            clm.state.change(["DE*ICE*E0000100"], [], 1)

    run = puller(published, read_ahead=0).pull_master_data(ICE, progress=meanwhile)
    assert run.ok and run.note is not None and "snapshot expired" in run.note
    assert run.stored == 121 and stored(published) == clm.evses()


def query_status(gembus: Gembus, evse_ids: list[str]) -> list[str | None]:
    """GetEvseStatusById as a search provider calls it (the WSGI app, no socket)."""
    ids = "".join(f"<s:evseId>{i}</s:evseId>" for i in evse_ids)
    body = f'<s:GetEvseStatusById xmlns:s="{S}">{ids}</s:GetEvseStatusById>'
    result = call(
        gembus.app,
        envelope(body, wsse_header("navi-search", "demo-search-password")),
        path="/services/evse_search",
        action=f"{S}/GetEvseStatusById",
    )
    root = etree.fromstring(result.body)
    return [e.findtext(f".//{{{EV}}}major") for e in root.iter(f"{{{S}}}evseStatus")]


def outbox_rows(gembus: Gembus) -> list[str]:
    with gembus.engine.connect() as c:
        return list(c.execute(text("SELECT topic FROM outbox")).scalars())


def test_status_pull_stores_publishes_and_expires(published: Gembus, clm: Clm) -> None:
    evsp = partner(published.uow, "tnm-mobility")
    with published.uow() as uow:
        subscribe(
            uow, evsp, Topic.EVSE_STATUS_CHANGED, "http://127.0.0.1:9/n", None, datetime.now(UTC)
        )
        uow.commit()
    pulls = puller(published)
    early = pulls.pull_statuses(ICE)  # before any master data: nothing to attach them to
    assert early.ok and early.rejected == 120 and early.rejections[0].reason is Reason.UNKNOWN_EVSE
    pulls.pull_master_data(ICE)
    run = pulls.pull_statuses(ICE, full=True)
    assert run.ok and (run.received, run.stored) == (120, 120)
    assert outbox_rows(published) == [Topic.EVSE_STATUS_CHANGED.value] * 120
    wire = clm.state.statuses["DE*ICE*E0000042"]
    assert query_status(published, ["DE*ICE*E0000042"]) == [wire.major]
    changed = ["DE*ICE*E0000042", "DE*ICE*E0000043"]
    clm.state.change_status(changed, ttl_s=1.5)
    since = pulls.pull_statuses(ICE)  # only what changed since the last status pull
    assert since.ok and since.received == 2 and since.as_of is not None
    assert len(outbox_rows(published)) == 122  # a new ttl is a change: published
    fresh = [clm.state.statuses[i].major for i in changed]
    assert query_status(published, changed) == fresh
    time.sleep(1.6)  # the pulled ttl passes: the status reads as unknown
    assert query_status(published, changed) == ["unknown", "unknown"]
    unchanged = clm.state.statuses["DE*ICE*E0000044"]  # ttl minutes away: still valid
    assert query_status(published, ["DE*ICE*E0000044"]) == [unchanged.major]


def test_two_concurrent_scheduled_runs_pull_once(
    published: Gembus, clm: Clm, database_url: str, tmp_path: Path
) -> None:
    clm.state.set_mode("slow", delay_s=0.3)  # three pages: the first run takes about 1 s
    other_engine = make_engine(database_url)  # a second worker: its own connections
    other = Puller(
        lambda: SqlUnitOfWork(make_session_factory(other_engine)),
        puller(published).directory,
        AdvisoryLeases(other_engine),
    )
    runs: list[Any] = []
    barrier = threading.Barrier(2)

    def worker(p: Puller) -> None:
        barrier.wait()
        runs.extend(p.pull_due(3600))

    threads = [threading.Thread(target=worker, args=(p,)) for p in (puller(published), other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    other_engine.dispose()
    assert len(runs) == 1 and runs[0].ok and runs[0].trigger is Trigger.SCHEDULE
    masterdata_requests = [r for r in read_log(tmp_path / "clm.jsonl") if r.path == MASTERDATA_PATH]
    assert len(masterdata_requests) == 3  # one full read of three pages, not two
    with published.uow() as uow:
        assert uow.evses.pull_runs("DEICE", (0, 10))[1] == 1
    assert puller(published).pull_due(3600) == []  # not due again for an hour


def test_an_operator_lease_held_elsewhere_refuses_an_on_demand_pull(published: Gembus) -> None:
    pulls = puller(published)
    with pulls.leases.hold("evse-pull/DEICE") as held:
        assert held
        with pytest.raises(PullInProgressError):
            pulls.pull_master_data(ICE)
    with pytest.raises(NotFoundError):
        pulls.pull_master_data(OperatorId.parse("DE*BMW"))  # it published no CLM service


def test_migration_0010_mirrors_the_tables(gembus: Gembus) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from persistence.tables import Base

    with gembus.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    touching = [d for d in diff if "evse_pull" in repr(d) or "pull_as_of" in repr(d)]
    assert touching == []


def test_migration_0010_goes_down_and_up_again(database_url: str, tmp_path: Path) -> None:
    """On a database of its own: 0010 reverts cleanly and applies again."""
    from contextlib import nullcontext

    from alembic import command
    from sqlalchemy import inspect

    from persistence.migrate import alembic_config, upgrade
    from tests.support.databases import fresh_postgres_database

    postgres = database_url.startswith("postgresql")
    own = fresh_postgres_database() if postgres else nullcontext(f"sqlite:///{tmp_path}/m.db")
    with own as url:
        engine = make_engine(url)
        upgrade(engine)
        if postgres:  # documents are compressed with LZ4 where the server has it
            with engine.connect() as c:
                compression = c.exec_driver_sql(
                    "SELECT attcompression FROM pg_attribute WHERE attname = 'document'"
                    " AND attrelid = 'evse_document'::regclass"
                ).scalar()
            assert compression == "l"
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, "0009")
        tables = inspect(engine)
        assert "evse_pull" not in tables.get_table_names()
        assert "pull_as_of" not in {c["name"] for c in tables.get_columns("evse_operator")}
        upgrade(engine)
        assert "evse_pull" in inspect(engine).get_table_names()
        engine.dispose()
