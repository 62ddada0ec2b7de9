"""The pieces of a CLM pull that need no database and no CLM: how a delta page is split, the
read-ahead pipeline, the run summary, the bulk writer's formatting, record documents."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree

from domain.charging.master_data import Reason, RecordResult
from domain.charging.pull import (
    Change,
    PullKind,
    PullOutcome,
    PullRun,
    Trigger,
    _split,
    _Tally,
    rejections_from_json,
)
from endpoints.evse_types import _rebuilt_document, document, read_record
from gembus.evse_pull import read_ahead
from persistence.bulk import copy_rows
from persistence.evse import EVSE, PROJECTED, projected_row, projection
from tests.fakes.clm_data import ClmDataState
from tests.support.evse import CMN, EV, Spec, record_xml

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def records(count: int = 3) -> list[etree._Element]:
    state = ClmDataState("DE*ICE", count)
    return state.render(state.evses[i] for i in state.sorted_ids())


def change(wire: str, kind: str, element: etree._Element | None) -> Change:
    return Change(wire, kind, T0, read_record(element) if element is not None else None)


def test_a_delta_page_keeps_the_latest_change_of_each_evse() -> None:
    first, second, third = records()
    page = [
        change("DE*ICE*E0000001", "update", first),
        change("DE*ICE*E0000002", "update", second),
        change("DE*ICE*E0000001", "delete", None),  # later: wins over the update
        change("DE*ICE*E0000003", "insert", third),
    ]
    tally = _Tally()
    upserts, deletes = _split(page, tally)
    assert [u.evse_id.wire for u in upserts] == ["DE*ICE*E0000002", "DE*ICE*E0000003"]  # type: ignore[union-attr]
    assert deletes == ["DE*ICE*E0000001"] and tally.rejected == 0


def test_a_delta_change_must_carry_its_own_record() -> None:
    first, second = records(2)
    tally = _Tally()
    upserts, deletes = _split(
        [
            change("DE*ICE*E0000009", "update", first),  # the record is E0000001
            change("DE*ICE*E0000002", "insert", None),
            change("DE*ICE*E0000002x", "update", second),  # not even an EVSE ID
        ],
        tally,
    )
    assert upserts == [] and deletes == []
    assert [(r.evse_wire, r.reason, r.field) for r in tally.rejections] == [
        ("DE*ICE*E0000009", Reason.EVSE_INCONSISTENT, "evse/evseId"),
        ("DE*ICE*E0000002", Reason.MISSING_FIELD, "evse"),
        ("DE*ICE*E0000002x", Reason.EVSE_INCONSISTENT, "evse/evseId"),
    ]


def test_deleting_what_gembus_does_not_hold_is_not_a_rejection() -> None:
    from domain.charging.master_data import ApplyOutcome

    tally = _Tally()
    tally.add_deletes(
        ApplyOutcome(
            [
                RecordResult("DE*ICE*E1"),
                RecordResult("DE*ICE*E2", Reason.UNKNOWN_EVSE, "evseId", "no such EVSE"),
                RecordResult("DE*BMW*E3", Reason.EVSE_INCONSISTENT, "evseId", "not yours"),
            ]
        )
    )
    assert (tally.deleted, tally.rejected) == (1, 1)
    assert tally.rejections[0].evse_wire == "DE*BMW*E3"


def test_read_ahead_hands_over_items_then_the_producers_error() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("page 3 broke")

    got: list[int] = []
    with pytest.raises(ValueError, match="page 3 broke"):
        for item in read_ahead(produce(), 1):
            got.append(item)
    assert got == [1, 2]
    assert list(read_ahead(iter([4, 5]), 0)) == [4, 5]


def test_a_consumer_that_stops_stops_every_stage() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for n in range(1000):
                produced.append(n)
                yield n
        finally:
            closed.set()

    chained = read_ahead((n * 10 for n in read_ahead(produce(), 2, "fetch")), 2, "read")
    assert [next(chained), next(chained)] == [0, 10]
    chained.close()  # the storing side failed
    assert closed.wait(5) and len(produced) < 20
    assert not [t for t in threading.enumerate() if t.name in ("fetch", "read")]


def run(**changes: Any) -> PullRun:
    base = PullRun(
        "DEICE", "DE*ICE", "ice-charging", PullKind.FULL, Trigger.CLI, T0,
        T0 + timedelta(seconds=12.34), PullOutcome.OK, 100, 97, 2, 1,
    )  # fmt: skip
    from dataclasses import replace

    return replace(base, **changes)


def test_a_run_summary_says_what_happened() -> None:
    assert run().summary() == (
        "DE*ICE full pull ok in 12.3 s: 100 received, 97 stored, 2 deleted, 1 rejected"
    )
    failed = run(
        outcome=PullOutcome.FAILED,
        failure_kind="timeout",
        failure_detail="GetEvseMasterData page 37: Operation timed out",
    )
    assert failed.summary() == (
        "DE*ICE full pull failed (timeout) in 12.3 s: GetEvseMasterData page 37: "
        "Operation timed out; nothing stored"
    )


def test_rejections_survive_their_json() -> None:
    kept = (RecordResult("DE*BMW*E5", Reason.EVSE_INCONSISTENT, "evseId", "not DE*ICE's"),)
    assert rejections_from_json(run(rejections=kept).rejections_json()) == kept
    assert run().rejections_json() is None and rejections_from_json(None) == ()


def test_the_projected_row_is_the_projection_in_table_order() -> None:
    assert tuple(c.name for c in EVSE.columns if c.name != "id") == PROJECTED
    for element in records(30):
        record = read_record(element)
        assert not isinstance(record, tuple) and hasattr(record, "evse_id")
        row = projected_row(record, "pull", T0)  # type: ignore[arg-type]
        assert projection(record, "pull", T0) == dict(zip(PROJECTED, row, strict=True))  # type: ignore[arg-type]


class Connection:
    encoding = "UTF8"  # what psycopg2 names the connection's client_encoding


class Cursor:
    connection = Connection()

    def copy_expert(self, sql: str, data: io.BytesIO) -> None:
        self.sql, self.data = sql, data.getvalue().decode("utf-8")


def test_copy_rows_escapes_what_copy_reserves_and_nothing_else() -> None:
    cursor = Cursor()
    berlin = timezone(timedelta(hours=1))
    rows = [
        ("plain ü", 7, 2.5, True, None, datetime(2026, 12, 1, 13, 0, tzinfo=berlin)),
        ("tab\there", 0, -0.0, False, "back\\slash", T0),
        ("line\nbreak\rreturn", -1, 1e-05, None, "", T0),
    ]
    assert copy_rows(cursor, "t", ["a", "b", "c", "d", "e", "f"], rows) == 3
    assert cursor.sql == "COPY t (a, b, c, d, e, f) FROM STDIN"
    assert cursor.data.split("\n") == [
        "plain ü\t7\t2.5\tTrue\t\\N\t2026-12-01T12:00:00+00:00",
        "tab\\there\t0\t-0.0\tFalse\tback\\\\slash\t2026-12-01T12:00:00+00:00",
        "line\\nbreak\\rreturn\t-1\t1e-05\t\\N\t\t2026-12-01T12:00:00+00:00",
        "",
    ]


def canonical(stored: str) -> bytes:
    return etree.tostring(etree.fromstring(stored), method="c14n", exclusive=True)


def test_a_usual_record_is_stored_as_a_rebuild_would_store_it() -> None:
    for element in records(20):  # the same XML; the rebuild leaves unused declarations
        fast, rebuilt = document(element), _rebuilt_document(element)
        assert canonical(fast) == canonical(rebuilt) and "xmlns:m" not in fast
    spec = Spec("DE*ICE*E1", "DE*ICE", 52.5, 13.4)
    upload = f'<u:x xmlns:u="urn:u" xmlns:ev="{EV}" xmlns:cmn="{CMN}">{record_xml(spec)}</u:x>'
    foreign = upload.replace("ev:", "e:").replace("xmlns:ev", "xmlns:e")  # other prefixes
    pretty = etree.tostring(etree.fromstring(upload), pretty_print=True).decode()
    for text in (upload, foreign, pretty):
        stored = document(etree.fromstring(text)[0])
        assert stored.startswith(f'<ev:record xmlns:ev="{EV}" xmlns:cmn="{CMN}"><ev:evseId>')
        assert "\n" not in stored and "xmlns:u" not in stored and "<e:" not in stored
        assert etree.fromstring(stored).findtext(f"{{{EV}}}evseId") == "DE*ICE*E1"
