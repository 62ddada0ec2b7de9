"""Reservation end to end: EVSP zeep client -> gembus /services/reservation -> operator's CLM.

The CLMs are real spyne processes (tests/fakes/clm.py) of operators registered on the
marketplace over SOAP like any operator, each with its EVSEs uploaded as master data and its
reservation service published: ES*RSV (tnm-mobility holds a contract; the CLM refuses
ES*RSV*E3*1), ES*NOC (no contract) and ES*DWN (taken down in a test), each with a roaming
agreement with tnm-mobility's NL-TNM (bmw-emobility's DE-BMW has none). gembus checks, records
(table ``reservation``), and routes through the gateway in process (table ``gateway_call``).
Every message the EVSP exchanges validates against the canonical XSD (the zeep plugin), and
the CLM's side is read from its request log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zeep.exceptions
from sqlalchemy import create_engine, text

from bus.contracts import all_contracts
from bus.guard import WSSE_NS
from tests.e2e.conftest import (
    LiveServer,
    forget_evses,
    gembus_cli,
    offer_reservation_service,
    register_operator,
)
from tests.fakes.clm import ClmProcess, start_clm_process
from tests.support.evse import Spec, zeep_record
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e
TNM = ("tnm-mobility", "demo-evsp-password")
BMW = ("bmw-emobility", "demo-evsp2-password")
R = "urn:gembus:reservation:v1"
CMN = "urn:gembus:common:v1"
CONTRACT_ID = "NL-TNM-000122045-U"


@dataclass
class Operator:
    partner_id: str
    operator_id: str
    clm: ClmProcess
    service_id: str = ""

    def evse(self, n: int) -> str:
        return f"{self.operator_id}*E{n}*1"

    def calls(self, operation: str = "ReserveEvse") -> int:
        return sum(r.operation == operation for r in self.clm.received())


def _upload(server: LiveServer, partner: tuple[str, str], operator_id: str) -> None:
    """E1 and E3 to E6 reservable, E2 not (E3 is the one the CLM refuses)."""
    specs = [
        Spec(f"{operator_id}*E{n}*1", operator_id, 40.4 + n / 100, -3.7, reservable=n != 2)
        for n in range(1, 7)
    ]
    answer = client(server.base_url, "evse_upload", *partner).UploadEvseData(
        operatorId=operator_id,
        actionType="fullLoad",
        evses={"evse": [zeep_record(s) for s in specs]},
    )
    assert answer.summary.rejected == 0


@pytest.fixture(scope="module")
def operators(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Operator]]:
    logs = tmp_path_factory.mktemp("clm-reservation")
    specs = {  # name: (partner ID, operator ID, does tnm-mobility hold a contract?)
        "rsv": ("rsv-cpo", "ES*RSV", True),
        "noc": ("noc-cpo", "ES*NOC", False),
        "dwn": ("dwn-cpo", "ES*DWN", True),
    }
    found: dict[str, Operator] = {}
    try:
        for name, (partner_id, operator_id, contracted) in specs.items():
            clm = start_clm_process(
                operator_id, refuse=[f"{operator_id}*E3*1"], log_path=logs / f"{name}.log"
            )
            found[name] = operator = Operator(partner_id, operator_id, clm)
            password = register_operator(live_server, partner_id, operator_id)
            _upload(live_server, (partner_id, password), operator_id)
            operator.service_id = offer_reservation_service(
                live_server, partner_id, password, clm.url, accepted_by=TNM if contracted else None
            )
            client(
                live_server.base_url, "marketplace", partner_id, password
            ).CreateRoamingAgreement(
                operatorId=operator_id,
                providerId="NL-TNM",
                validity={"validFrom": datetime.now(UTC) - timedelta(minutes=1)},
            )
        yield found
    finally:
        for operator in found.values():
            operator.clm.kill()
        forget_evses(live_server, *(o.operator_id for o in found.values()))


def evsp(server: LiveServer, user: tuple[str, str] = TNM) -> Any:
    return client(server.base_url, "reservation", *user)


def reserve(service: Any, evse_id: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "providerId": "NL-TNM",
        "contractId": CONTRACT_ID,
        "evseId": evse_id,
        "partnerReservationId": f"TNM-{uuid.uuid4().hex[:12]}",
        "requestedExpiry": datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30),
    }
    return service.ReserveEvse(**{**values, **overrides})


def fault_of(raised: pytest.ExceptionInfo[zeep.exceptions.Fault]) -> tuple[str, str | None]:
    detail = raised.value.detail[0]
    return str(detail.findtext(f"{{{CMN}}}code")), detail.findtext(f"{{{CMN}}}field")


def rows(server: LiveServer, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(server.env["GEMBUS_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params).all())
    finally:
        engine.dispose()


def recorded(server: LiveServer, reference: str) -> list[Any]:
    return rows(
        server,
        "SELECT * FROM reservation WHERE partner_reservation_id = :r ORDER BY id",
        r=reference,
    )


def logged_call(server: LiveServer, message_id: str) -> Any:
    """The request's gateway_call row once its outcome is written (within 0.1 s of the reply)."""
    deadline = time.monotonic() + 5
    while True:
        (call,) = rows(
            server,
            "SELECT requester_id, provider_id, service_id, operation, contract_id, outcome, "
            "fault_code, bytes_out FROM gateway_call WHERE message_id = :m",
            m=message_id,
        )
        if call.outcome != "pending" or time.monotonic() > deadline:
            return call
        time.sleep(0.05)


def test_a_reservation_reaches_the_operators_clm_and_is_recorded(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    rsv = operators["rsv"]
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    answer = reserve(
        evsp(live_server), rsv.evse(1), partnerReservationId="TNM-OK-1", requestedExpiry=expiry
    )
    assert answer.reservationId.startswith("ESRSV-R") and answer.evseId == rsv.evse(1)
    assert answer.partnerReservationId == "TNM-OK-1" and answer.expiry == expiry
    # the CLM got the EVSP's message, unchanged: its Body and its WS-Security header
    sent = rsv.clm.received()[-1]
    child = sent.body_child()
    assert child is not None and all_contracts()["reservation"].schema.validate(child)
    assert child.findtext(f"{{{R}}}partnerReservationId") == "TNM-OK-1"
    assert b"tnm-mobility" in sent.body and WSSE_NS.encode() in sent.body
    (row,) = recorded(live_server, "TNM-OK-1")
    assert (row.state, row.reservation_id, row.partner_id, row.evse_id) == (
        "held",
        answer.reservationId,
        "tnm-mobility",
        rsv.evse(1),
    )
    assert row.granted_expiry == expiry and row.fault_code is None
    call = logged_call(live_server, row.message_id)
    assert (call.requester_id, call.provider_id, call.service_id, call.operation) == (
        "tnm-mobility",
        "rsv-cpo",
        rsv.service_id,
        "ReserveEvse",
    )
    assert call.outcome == "ok" and call.contract_id is not None and call.bytes_out > 0


def test_a_repeat_is_answered_from_the_record(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    rsv, service = operators["rsv"], evsp(live_server)
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=25)
    first = reserve(service, rsv.evse(1), partnerReservationId="TNM-AGAIN", requestedExpiry=expiry)
    calls = rsv.calls()
    again = reserve(service, rsv.evse(1), partnerReservationId="TNM-AGAIN", requestedExpiry=expiry)
    assert (again.reservationId, again.start, again.expiry) == (
        first.reservationId,
        first.start,
        first.expiry,
    )
    assert rsv.calls() == calls  # the CLM saw the first one only
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(
            service,
            rsv.evse(1),
            partnerReservationId="TNM-AGAIN",
            requestedExpiry=expiry + timedelta(minutes=1),
        )
    assert fault_of(raised) == ("Client.DuplicateReservation", "partnerReservationId")
    assert first.reservationId in raised.value.message
    assert rsv.calls() == calls
    assert [r.state for r in recorded(live_server, "TNM-AGAIN")] == ["held", "refused"]


@pytest.mark.parametrize(
    ("evse", "code", "field"),
    [
        (2, "Client.EvseNotReservable", "evseId"),  # gembus's master data says so
        (999, "Client.UnknownEvse", "evseId"),
    ],
)
def test_what_gembus_knows_is_refused_before_the_clm_is_asked(
    live_server: LiveServer, operators: dict[str, Operator], evse: int, code: str, field: str
) -> None:
    rsv = operators["rsv"]
    calls = rsv.calls()
    reference = f"TNM-GEMBUS-{evse}"
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(evsp(live_server), rsv.evse(evse), partnerReservationId=reference)
    assert fault_of(raised) == (code, field)
    assert rsv.evse(evse) in raised.value.message
    assert rsv.calls() == calls
    assert [(r.state, r.fault_code) for r in recorded(live_server, reference)] == [
        ("refused", code)
    ]


def test_a_period_that_ended_already_is_refused(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(
            evsp(live_server),
            operators["rsv"].evse(1),
            requestedExpiry=datetime.now(UTC) - timedelta(minutes=1),
        )
    assert fault_of(raised) == ("Client.InvalidReservationPeriod", "requestedExpiry")


def test_without_a_contract_for_the_operators_service_nothing_is_forwarded(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    noc = operators["noc"]
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(evsp(live_server), noc.evse(1), partnerReservationId="TNM-NOC")
    assert fault_of(raised) == ("Client.NoContract", "service")
    assert f"no active contract for service {noc.service_id} of noc-cpo" in raised.value.message
    assert noc.calls() == 0
    assert [(r.state, r.fault_code) for r in recorded(live_server, "TNM-NOC")] == [
        ("refused", "Client.NoContract")
    ]


def test_an_evsp_reserves_only_under_its_own_provider_id(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    rsv = operators["rsv"]
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(evsp(live_server, BMW), rsv.evse(1))  # bmw-emobility sends NL-TNM
    assert fault_of(raised) == ("Client.CallerMismatch", "providerId")
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(evsp(live_server, BMW), rsv.evse(1), providerId="DE-BMW")  # NL-TNM's contract
    assert fault_of(raised) == ("Client.CallerMismatch", "contractId")
    with pytest.raises(zeep.exceptions.Fault) as raised:  # its own, but no roaming agreement
        reserve(
            evsp(live_server, BMW),
            rsv.evse(1),
            providerId="DE-BMW",
            contractId="DE*BMW*0010LY*3",
            partnerReservationId="BMW-OWN",
        )
    assert fault_of(raised) == ("Client.NoRoamingAgreement", "evseId")
    assert "DE-BMW and the operator of ES*RSV*E1*1" in raised.value.message
    assert [r.partner_id for r in recorded(live_server, "BMW-OWN")] == ["bmw-emobility"]


def test_the_clms_refusal_reaches_the_evsp_as_its_declared_fault(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    rsv = operators["rsv"]
    calls = rsv.calls()
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(evsp(live_server), rsv.evse(3), partnerReservationId="TNM-CLM-NO")
    assert fault_of(raised) == ("Client.EvseNotReservable", "evseId")
    assert raised.value.message == f"EVSE {rsv.evse(3)} cannot be reserved"  # the CLM's words
    assert rsv.calls() == calls + 1
    (row,) = recorded(live_server, "TNM-CLM-NO")
    assert (row.state, row.fault_code, row.fault_message) == (
        "refused",
        "Client.EvseNotReservable",
        raised.value.message,
    )
    call = logged_call(live_server, row.message_id)
    assert (call.outcome, call.fault_code) == ("fault", "Provider.Fault")


def test_a_clm_that_is_down_is_provider_unavailable_and_a_retry_may_follow(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    dwn = operators["dwn"]
    dwn.clm.kill()
    for _ in range(2):  # the failed attempt does not hold the key: the retry is asked again
        with pytest.raises(zeep.exceptions.Fault) as raised:
            reserve(evsp(live_server), dwn.evse(1), partnerReservationId="TNM-DOWN")
        assert fault_of(raised)[0] == "Server.ProviderUnavailable"
    assert [(r.state, r.fault_code) for r in recorded(live_server, "TNM-DOWN")] == [
        ("failed", "Server.ProviderUnavailable")
    ] * 2


def test_cancel_once_and_twice_and_not_someone_elses(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    rsv, service = operators["rsv"], evsp(live_server)
    held = reserve(service, rsv.evse(4), partnerReservationId="TNM-CANCEL")
    cancel = {"providerId": "NL-TNM", "evseId": rsv.evse(4), "reservationId": held.reservationId}
    with pytest.raises(zeep.exceptions.Fault) as raised:  # bmw-emobility holds no such thing
        evsp(live_server, BMW).CancelReservation(**{**cancel, "providerId": "DE-BMW"})
    assert fault_of(raised) == ("Client.UnknownReservation", "reservationId")
    first = service.CancelReservation(**cancel, reason="Driver changed route")
    assert (first.reservationId, first.evseId) == (held.reservationId, rsv.evse(4))
    again = service.CancelReservation(**cancel)
    assert again.cancelledAt == first.cancelledAt
    assert rsv.calls("CancelReservation") == 1  # the repeat came from the record
    (row,) = recorded(live_server, "TNM-CANCEL")
    assert (row.state, row.cancel_reason) == ("cancelled", "Driver changed route")
    assert row.cancelled_at == first.cancelledAt
    with pytest.raises(zeep.exceptions.Fault) as raised:  # its key is used up
        reserve(
            service,
            rsv.evse(4),
            partnerReservationId="TNM-CANCEL",
            requestedExpiry=row.requested_expiry,
        )
    assert fault_of(raised) == ("Client.DuplicateReservation", "partnerReservationId")


def test_the_marketplace_operator_lists_reservations(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    reserve(evsp(live_server), operators["rsv"].evse(5), partnerReservationId="TNM-LISTED")
    listed = gembus_cli(live_server.env, "reservation", "list", "--evsp", "tnm-mobility")
    line = next(line for line in listed.splitlines() if "TNM-LISTED" in line)
    assert "held" in line and operators["rsv"].evse(5) in line and "ESRSV-R" in line
    assert "bmw-emobility" not in listed and "-- page 1," in listed
    assert "BMW-OWN" in gembus_cli(live_server.env, "reservation", "list", "--page-size", "1000")


def test_an_evsp_on_version_2_reserves_and_cancels_at_a_clm_on_version_1(
    live_server: LiveServer, operators: dict[str, Operator]
) -> None:
    rsv, v2 = operators["rsv"], client(live_server.base_url, "reservation_v2", *TNM)
    asked = {
        "providerId": "NL-TNM",
        "customer": {"contractId": CONTRACT_ID},
        "evseId": rsv.evse(6),
        "partnerReservationId": "TNM-V2",
        "durationMinutes": 15,
    }
    held = v2.ReserveEvse(**asked)
    assert held.reservationId.startswith("ESRSV-R") and held.grantedMinutes == 15
    sent = rsv.clm.received()[-1].body_child()  # converted to the CLM's version
    assert sent is not None and all_contracts()["reservation"].schema.validate(sent)
    expiry = datetime.fromisoformat(str(sent.findtext(f"{{{R}}}requestedExpiry")))
    assert abs(expiry - held.start - timedelta(minutes=15)) < timedelta(seconds=5)
    calls = rsv.calls()
    time.sleep(1.1)  # a repeat without requestedStart asks for the same length, later
    again = v2.ReserveEvse(**asked)
    assert (again.reservationId, again.start, again.grantedMinutes) == (
        held.reservationId,
        held.start,
        15,
    )
    assert rsv.calls() == calls
    cancel = {"providerId": "NL-TNM", "evseId": rsv.evse(6), "reservationId": held.reservationId}
    cancelled = v2.CancelReservation(**cancel)
    assert v2.CancelReservation(**cancel).cancelledAt == cancelled.cancelledAt
    assert [r.state for r in recorded(live_server, "TNM-V2")] == ["cancelled"]
