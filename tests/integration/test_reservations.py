"""Reservations on PostgreSQL and SQLite: the ``reservation`` table and its repository, and
the whole path through the WSGI app to a fake CLM (tests/fakes/clm.py served from a thread),
which on SQLite is what ``make run`` does."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import text

from domain.charging.master_data import Action, apply_records
from domain.charging.model import EvseRecord
from domain.charging.reservation import Reservation, State
from domain.identifiers import OperatorId
from endpoints.evse_types import read_record
from gembus.bootstrap import Gembus
from tests.fakes.clm import ClmApp, RunningFake, make_clm_app, serve
from tests.support.evse import Spec, record_xml
from tests.support.marketplace import contract, partner, published_offering, roaming_agreement
from tests.support.soap import call, envelope, wsse_header

pytestmark = pytest.mark.postgres
NOW = datetime.now(UTC).replace(microsecond=0)
TNM = ("tnm-mobility", "demo-evsp-password")
R = "urn:gembus:reservation:v1"
CMN = "urn:gembus:common:v1"


def record(**changes: Any) -> Reservation:
    base = Reservation(
        partner_id="tnm-mobility",
        provider_id="NL-TNM",
        provider_key="NLTNM",
        contract_id="NL-TNM-000122045-U",
        evse_id="DE*ICE*E1*1",
        evse_key="DEICEE11",
        operator_key="DEICE",
        requested_expiry=NOW + timedelta(minutes=30),
        content_hash="c" * 64,
        message_id="m1",
        created_at=NOW,
        updated_at=NOW,
        partner_reservation_id="TNM-1",
    )
    return dataclasses.replace(base, **changes)


def add(gembus: Gembus, reservation: Reservation) -> int | None:
    with gembus.uow() as uow:
        found = uow.reservations.add(reservation)
        uow.commit()
    return found


def test_migration_0011_mirrors_the_table(gembus: Gembus) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from persistence.tables import Base

    with gembus.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if "reservation" in repr(d)] == []


def test_a_key_belongs_to_one_live_record_and_survives_a_round_trip(gembus: Gembus) -> None:
    refused = record(state=State.REFUSED, fault_code="Client.UnknownEvse", fault_message="no")
    assert add(gembus, refused) is not None
    first = record(requested_start=NOW + timedelta(minutes=1))
    first_id = add(gembus, first)
    assert first_id is not None
    assert add(gembus, record(state=State.HELD)) is None  # the key is taken
    assert add(gembus, dataclasses.replace(refused, message_id="m2")) is not None  # refusals pile
    assert add(gembus, record(partner_reservation_id=None)) is not None  # no key, no limit
    assert add(gembus, record(partner_reservation_id=None)) is not None
    with gembus.uow() as uow:
        stored = uow.reservations.by_partner_reference("NLTNM", "TNM-1")
    assert stored == dataclasses.replace(first, id=first_id)  # every field, instants in UTC


def test_cancel_only_of_a_held_reservation_and_the_latest_clm_id_wins(gembus: Gembus) -> None:
    old_id = add(
        gembus, record(partner_reservation_id="A", state=State.CANCELLED, reservation_id="R1")
    )
    held = record(state=State.HELD, reservation_id="R1", granted_expiry=NOW + timedelta(hours=1))
    held = dataclasses.replace(held, id=add(gembus, held))
    with gembus.uow() as uow:
        assert uow.reservations.by_reservation_id("DEICE", "R1") == held  # the CLM restarted
        assert uow.reservations.by_reservation_id("DEBMW", "R1") is None
        cancelled = dataclasses.replace(held, state=State.CANCELLED, cancelled_at=NOW)
        assert uow.reservations.cancel(cancelled)
        assert not uow.reservations.cancel(cancelled)  # not held any more
        uow.commit()
    with gembus.uow() as uow:
        latest = uow.reservations.by_reservation_id("DEICE", "R1")
    assert latest is not None and latest.id == held.id and latest.state is State.CANCELLED
    assert old_id is not None and old_id < held.id  # type: ignore[operator]


def test_list_pages_newest_first_per_evsp(gembus: Gembus) -> None:
    for n in range(5):
        add(gembus, record(partner_reservation_id=f"T{n}"))
    add(gembus, record(partner_id="bmw-emobility", provider_key="DEBMW"))
    with gembus.uow() as uow:
        page, total = uow.reservations.list("tnm-mobility", (2, 2))
        everyone = uow.reservations.list(None, (0, 100))[1]
    assert total == 5 and everyone == 6
    assert [r.partner_reservation_id for r in page] == ["T2", "T1"]


def test_two_writers_of_one_key_write_one_record(gembus: Gembus) -> None:
    """The second insert waits for the first transaction and then finds the key taken."""
    second: list[int | None] = []
    with gembus.uow() as uow:
        assert uow.reservations.add(record()) is not None
        writer = threading.Thread(
            target=lambda: second.append(add(gembus, record(message_id="m2")))
        )
        writer.start()
        time.sleep(0.3)  # it is blocked on our uncommitted row (PostgreSQL) or lock (SQLite)
        assert second == []
        uow.commit()
    writer.join(10)
    assert second == [None]
    with gembus.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reservation")).scalar_one() == 1


# --------------------------------------------------------------------------- the whole path


@pytest.fixture
def clm(gembus: Gembus) -> Iterator[tuple[ClmApp, RunningFake]]:
    """ICE Charging's CLM, published as its reservation service; tnm-mobility holds a contract;
    DE*ICE*E1*1 and E3 reservable (the CLM refuses E3), E2 not."""
    app = make_clm_app("DE*ICE", refuse={"DE*ICE*E3*1"})
    running = serve(app)
    ice = partner(gembus.uow, "ice-charging")
    offering = published_offering(gembus.uow, ice, family="reservation", endpoint_url=running.url)
    contract(gembus.uow, partner(gembus.uow, "tnm-mobility"), offering)
    roaming_agreement(gembus.uow, ice, "DE*ICE", "NL-TNM", NOW - timedelta(days=1))
    records = [
        _parsed(Spec(f"DE*ICE*E{n}*1", "DE*ICE", 52.5, 13.4, reservable=n != 2)) for n in (1, 2, 3)
    ]
    with gembus.uow() as uow:
        apply_records(uow, OperatorId.parse("DE*ICE"), Action.FULL_LOAD, records, NOW, "test")
        uow.commit()
    yield app, running
    running.stop()


def _parsed(spec: Spec) -> EvseRecord:
    u = "urn:gembus:evse-upload:v1"
    element = etree.fromstring(
        record_xml(spec, f'u:evse xmlns:u="{u}" xmlns:ev="urn:gembus:evse:v1" xmlns:cmn="{CMN}"')
    )
    parsed = read_record(element)
    assert isinstance(parsed, EvseRecord)
    return parsed


def soap(gembus: Gembus, operation: str, body: str) -> etree._Element:
    """The Body child of gembus's answer (a response or a Fault) to tnm-mobility's request."""
    result = call(
        gembus.app,
        envelope(f'<r:{operation} xmlns:r="{R}">{body}</r:{operation}>', wsse_header(*TNM)),
        path="/services/reservation",
        action=f"{R}/{operation}",
    )
    child = etree.fromstring(result.body)[-1][0]
    detail = child.find(f".//{{{CMN}}}gembusFault")
    schema = gembus.contracts["reservation"].schema
    assert schema.validate(detail if detail is not None else child), schema.error_log
    return child


def reserve_body(evse: str, reference: str, expiry: str) -> str:
    return (
        "<r:providerId>NL-TNM</r:providerId><r:contractId>NL-TNM-000122045-U</r:contractId>"
        f"<r:evseId>{evse}</r:evseId><r:partnerReservationId>{reference}</r:partnerReservationId>"
        f"<r:requestedExpiry>{expiry}</r:requestedExpiry>"
    )


def code_of(answer: etree._Element) -> str | None:
    return answer.findtext(f".//{{{CMN}}}code")


def test_reserve_repeat_refuse_and_cancel_through_the_app(
    gembus: Gembus, clm: tuple[ClmApp, RunningFake]
) -> None:
    app, _ = clm
    started = datetime.now(UTC)
    expiry = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()  # judged by the real clock
    held = soap(gembus, "ReserveEvse", reserve_body("DE*ICE*E1*1", "TNM-A", expiry))
    reservation_id = held.findtext(f"{{{R}}}reservationId")
    assert reservation_id == "DEICE-R1"
    again = soap(gembus, "ReserveEvse", reserve_body("DE*ICE*E1*1", "TNM-A", expiry))
    assert etree.tostring(again) == etree.tostring(held) and len(app.received) == 1
    assert code_of(soap(gembus, "ReserveEvse", reserve_body("DE*ICE*E2*1", "TNM-B", expiry))) == (
        "Client.EvseNotReservable"
    )
    assert len(app.received) == 1  # gembus's own refusal
    assert code_of(soap(gembus, "ReserveEvse", reserve_body("DE*ICE*E3*1", "TNM-C", expiry))) == (
        "Client.EvseNotReservable"
    )
    assert len(app.received) == 2  # the CLM's
    cancel = (
        "<r:providerId>NL-TNM</r:providerId><r:evseId>DE*ICE*E1*1</r:evseId>"
        f"<r:reservationId>{reservation_id}</r:reservationId>"
    )
    first = soap(gembus, "CancelReservation", cancel)
    assert etree.tostring(soap(gembus, "CancelReservation", cancel)) == etree.tostring(first)
    assert [r.operation for r in app.received] == [
        "ReserveEvse",
        "ReserveEvse",
        "CancelReservation",
    ]
    gembus.app.gateway.log.flush()  # type: ignore[union-attr]
    with gembus.engine.connect() as connection:
        states = connection.execute(
            text("SELECT partner_reservation_id, state, fault_code FROM reservation ORDER BY id")
        ).all()
        logged = connection.execute(
            text(  # the tier's PostgreSQL database keeps other tests' calls
                "SELECT operation, outcome, fault_code FROM gateway_call WHERE at >= :t ORDER BY id"
            ),
            {"t": started},
        ).all()
    assert [tuple(s) for s in states] == [
        ("TNM-A", "cancelled", None),
        ("TNM-B", "refused", "Client.EvseNotReservable"),
        ("TNM-C", "refused", "Client.EvseNotReservable"),
    ]
    assert [tuple(c) for c in logged] == [
        ("ReserveEvse", "ok", None),
        ("ReserveEvse", "fault", "Provider.Fault"),
        ("CancelReservation", "ok", None),
    ]
