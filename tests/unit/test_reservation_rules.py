"""Reservation rules without a database (domain/charging/reservation.py), and how the relay
reads a CLM's faults (bus/relay.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from bus.gateway import ProviderUnavailableError
from bus.relay import partner_fault
from domain.charging import reservation as rules
from domain.charging.reservation import (
    LIVE_STATES,
    CancelRequest,
    Granted,
    Reservation,
    ReservationRequest,
    State,
)
from domain.clearing.customer_contracts import Token
from domain.identifiers import ProviderId
from domain.marketplace.validation import AgreementAnswer, Reason
from domain.partners import Contact, Partner, PartnerData, PartnerStatus, Role
from gembus.errors import GembusError, PartnerFault, ServerError
from tests.unit.test_partner_rules import MemoryUow as PartnerUow

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SOON = NOW + timedelta(minutes=30)
GRANTED = Granted("DEICE-R7", NOW, NOW + timedelta(minutes=20))
CMN = "urn:gembus:common:v1"


class MemoryReservations:
    """The repository's rules: the idempotency key is unique among the live records only."""

    def __init__(self) -> None:
        self.rows: dict[int, Reservation] = {}

    def add(self, reservation: Reservation) -> int | None:
        live = reservation.state in LIVE_STATES
        key = (reservation.provider_key, reservation.partner_reservation_id)
        if live and self.by_partner_reference(*key) is not None:
            return None
        new_id = len(self.rows) + 1
        self.rows[new_id] = dataclasses.replace(reservation, id=new_id)
        return new_id

    def update(self, reservation: Reservation) -> None:
        assert reservation.id in self.rows
        self.rows[reservation.id] = reservation

    def cancel(self, reservation: Reservation) -> bool:
        assert reservation.id is not None
        if self.rows[reservation.id].state is not State.HELD:
            return False
        self.rows[reservation.id] = reservation
        return True

    def by_partner_reference(self, provider_key: str, reference: str | None) -> Reservation | None:
        if reference is None:
            return None
        found = [
            r
            for r in self.rows.values()
            if (r.provider_key, r.partner_reservation_id) == (provider_key, reference)
            and r.state in LIVE_STATES
        ]
        return found[0] if found else None

    def by_reservation_id(self, operator_key: str, reservation_id: str) -> Reservation | None:
        issued = [
            r
            for r in self.rows.values()
            if (r.operator_key, r.reservation_id) == (operator_key, reservation_id)
            and r.state in (State.HELD, State.CANCELLED)
        ]
        return issued[-1] if issued else None


class MemoryEvses:
    def __init__(self) -> None:
        self.flags = {"DEICEE11": True, "DEICEE21": False, "DEBMWE11": True}

    def reservable(self, evse_keys: list[str]) -> dict[str, bool]:
        return {k: self.flags[k] for k in evse_keys if k in self.flags}


class MemoryUow(PartnerUow):
    """The partner rules' in-memory unit of work, with reservations and EVSE master data."""

    def __init__(self) -> None:
        super().__init__()
        self.reservations = MemoryReservations()
        self.evses = MemoryEvses()


class Clm:
    """The CLM behind ``forward``: counts how often it was asked, answers or raises."""

    def __init__(self, answer: Granted | BaseException = GRANTED) -> None:
        self.answer, self.asked = answer, 0

    def __call__(self) -> Granted:
        self.asked += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def evsp(partner_id: str = "tnm-mobility", provider: str = "NL-TNM") -> Partner:
    data = PartnerData(
        "EVSP", (Role.EVSP,), Contact("a@b.example"), (), (ProviderId.parse(provider),)
    )
    return Partner(partner_id, PartnerStatus.ACTIVE, data, NOW, NOW)


def ask(**changes: object) -> ReservationRequest:
    request = ReservationRequest(
        "NL-TNM", "NL-TNM-000122045-U", "DE*ICE*E1*1", SOON, partner_reservation_id="TNM-1"
    )
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


@pytest.fixture
def uow() -> MemoryUow:
    return MemoryUow()


class Agreements:
    """SRV 1967's roaming-agreement answer: ``reason`` for every pair; DEICE is ice-charging's."""

    def __init__(self, reason: Reason = Reason.OK) -> None:
        self.reason = reason
        self.asked: list[tuple[str, str]] = []

    def validate_roaming_agreement(
        self, operator_id: str, provider_id: str, at: datetime | None = None
    ) -> AgreementAnswer:
        self.asked.append((operator_id, provider_id))
        owner = {"DEICE": "ice-charging", "DEBMW": "bmw-emobility"}.get(operator_id)
        return AgreementAnswer(
            self.reason is Reason.OK, self.reason, at or NOW, (), owner, "tnm-mobility"
        )


def reserve(
    uow: MemoryUow,
    request: ReservationRequest,
    clm: Callable[[], Granted],
    actor: Partner | None = None,
    now: datetime = NOW,
    agreements: Agreements | None = None,
) -> Reservation:
    return rules.reserve(  # type: ignore[return-value]
        lambda: uow,  # type: ignore[arg-type]
        actor or evsp(),
        request,
        "msg-1",
        now,
        clm,
        agreements=agreements or Agreements(),
    )


def cancel(
    uow: MemoryUow,
    request: CancelRequest,
    clm: Callable[[], datetime],
    actor: Partner | None = None,
) -> Reservation:
    return rules.cancel(lambda: uow, actor or evsp(), request, NOW, clm)  # type: ignore[arg-type]


def fault(raised: pytest.ExceptionInfo[GembusError]) -> tuple[str, str | None]:
    return raised.value.fault_code, raised.value.field


def states(uow: MemoryUow) -> list[tuple[State, str | None]]:
    return [(r.state, r.fault_code) for r in uow.reservations.rows.values()]


# --------------------------------------------------------------------------- ReserveEvse

BMW = evsp("bmw-emobility", "DE-BMW")
PERIOD = "Client.InvalidReservationPeriod"


@pytest.mark.parametrize(
    ("request_", "actor", "code", "field"),
    [
        (ask(), BMW, "Client.CallerMismatch", "providerId"),
        (ask(contract_id="DE-BMW-000122045-2"), None, "Client.CallerMismatch", "contractId"),
        (ask(contract_id="NL-TNM-000122045-X"), None, "Client.InvalidIdentifier", "contractId"),
    ],
)
def test_a_request_that_is_not_the_callers_own_is_refused_unrecorded(
    uow: MemoryUow, request_: ReservationRequest, actor: Partner | None, code: str, field: str
) -> None:
    clm = Clm()
    with pytest.raises(GembusError) as raised:
        reserve(uow, request_, clm, actor)
    assert fault(raised) == (code, field) and clm.asked == 0
    assert uow.reservations.rows == {}  # nothing to attribute it to


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (ask(evse_id="DE*ICE*E9*9"), "Client.UnknownEvse", "evseId"),
        (ask(evse_id="DE*ICE*E2*1"), "Client.EvseNotReservable", "evseId"),
        (ask(requested_expiry=NOW), PERIOD, "requestedExpiry"),
        (ask(requested_start=NOW - timedelta(minutes=6)), PERIOD, "requestedStart"),
        (ask(requested_start=SOON, requested_expiry=SOON), PERIOD, "requestedExpiry"),
    ],
)
def test_what_gembus_checks_is_refused_and_recorded_without_asking_the_clm(
    uow: MemoryUow, request_: ReservationRequest, code: str, field: str
) -> None:
    clm = Clm()
    with pytest.raises(GembusError) as raised:
        reserve(uow, request_, clm)
    assert fault(raised) == (code, field) and clm.asked == 0
    assert states(uow) == [(State.REFUSED, code)]


@pytest.mark.parametrize("reason", [Reason.NO_CONTRACT, Reason.EXPIRED, Reason.TERMINATED])
def test_without_a_valid_roaming_agreement_the_clm_is_not_asked(
    uow: MemoryUow, reason: Reason
) -> None:
    clm, agreements = Clm(), Agreements(reason)
    with pytest.raises(GembusError) as raised:
        reserve(uow, ask(), clm, agreements=agreements)
    assert fault(raised) == ("Client.NoRoamingAgreement", "evseId") and clm.asked == 0
    assert agreements.asked == [("DEICE", "NLTNM")]
    assert states(uow) == [(State.REFUSED, "Client.NoRoamingAgreement")]


def test_the_operators_own_evse_needs_no_roaming_agreement(uow: MemoryUow) -> None:
    bmw_both = Partner(
        "bmw-emobility",
        PartnerStatus.ACTIVE,
        PartnerData(
            "BMW",
            (Role.EVSP, Role.EVSE_OPERATOR),
            Contact("a@b.example"),
            (),
            (ProviderId.parse("DE-BMW"),),
        ),
        NOW,
        NOW,
    )
    request = ask(provider_id="DE-BMW", contract_id="DE-BMW-000122045-2", evse_id="DE*BMW*E1*1")
    clm = Clm()
    held = reserve(uow, request, clm, bmw_both, agreements=Agreements(Reason.NO_CONTRACT))
    assert held.state is State.HELD and clm.asked == 1


def test_a_start_within_the_clock_skew_and_a_later_start_are_fine(uow: MemoryUow) -> None:
    assert reserve(uow, ask(requested_start=NOW - timedelta(minutes=4)), Clm()).state is State.HELD
    later = ask(
        partner_reservation_id="TNM-2",
        requested_start=SOON,
        requested_expiry=SOON + timedelta(seconds=1),
    )
    assert reserve(uow, later, Clm()).state is State.HELD


def test_a_request_longer_than_the_clm_grants_is_passed_on_and_the_grant_recorded(
    uow: MemoryUow,
) -> None:
    clm = Clm()
    held = reserve(uow, ask(requested_expiry=NOW + timedelta(hours=5)), clm)
    assert clm.asked == 1
    assert (held.requested_expiry, held.granted_expiry) == (
        NOW + timedelta(hours=5),
        GRANTED.expiry,
    )


def test_a_repeat_with_identical_content_is_answered_from_the_record(uow: MemoryUow) -> None:
    clm = Clm()
    first = reserve(uow, ask(), clm)
    assert first.state is State.HELD and first.reservation_id == "DEICE-R7"
    same = ask(requested_expiry=SOON.astimezone(timezone(timedelta(hours=1))))  # same instant
    assert reserve(uow, same, clm) == first and clm.asked == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"requested_expiry": SOON + timedelta(minutes=1)},
        {"evse_id": "DEICEE11"},  # the same EVSE in another notation is other content
        {"token": Token("4F2A19C3", "rfid")},
    ],
)
def test_other_content_under_a_used_reference_is_a_duplicate(
    uow: MemoryUow, changed: dict[str, object]
) -> None:
    clm = Clm()
    reserve(uow, ask(), clm)
    with pytest.raises(GembusError) as raised:
        reserve(uow, ask(**changed), clm)
    assert fault(raised) == ("Client.DuplicateReservation", "partnerReservationId")
    assert "DEICE-R7" in raised.value.message and clm.asked == 1
    assert states(uow) == [(State.HELD, None), (State.REFUSED, "Client.DuplicateReservation")]


def test_without_a_reference_every_request_is_a_new_reservation(uow: MemoryUow) -> None:
    clm = Clm()
    reserve(uow, ask(partner_reservation_id=None), clm)
    reserve(uow, ask(partner_reservation_id=None), clm)
    assert clm.asked == 2


def test_a_clm_refusal_and_a_failure_are_recorded_and_leave_the_reference_free(
    uow: MemoryUow,
) -> None:
    refusal = PartnerFault("Client.EvseNotAvailable", "in use", field="evseId")
    with pytest.raises(PartnerFault):
        reserve(uow, ask(), Clm(refusal))
    with pytest.raises(ProviderUnavailableError):
        reserve(uow, ask(), Clm(ProviderUnavailableError("down")))
    assert reserve(uow, ask(), Clm()).state is State.HELD
    assert states(uow) == [
        (State.REFUSED, "Client.EvseNotAvailable"),
        (State.FAILED, "Server.ProviderUnavailable"),
        (State.HELD, None),
    ]


def test_a_twin_in_flight_is_not_sent_to_the_clm_again(uow: MemoryUow) -> None:
    twins: list[str] = []

    def clm() -> Granted:  # the twin arrives while the first request is with the CLM
        with pytest.raises(GembusError) as raised:
            reserve(uow, ask(), Clm())
        twins.append(raised.value.fault_code)
        return GRANTED

    assert reserve(uow, ask(), clm).state is State.HELD
    assert twins == ["Server.Unavailable"]


def test_a_pending_record_whose_worker_died_is_retried_after_the_timeout(uow: MemoryUow) -> None:
    with pytest.raises(SystemExit):  # the worker is killed while the CLM is asked
        reserve(uow, ask(), Clm(SystemExit()))
    clm = Clm()
    with pytest.raises(GembusError) as raised:
        reserve(uow, ask(), clm, now=NOW + rules.PENDING_TIMEOUT - timedelta(seconds=1))
    assert raised.value.fault_code == "Server.Unavailable" and clm.asked == 0
    later = reserve(uow, ask(), clm, now=NOW + rules.PENDING_TIMEOUT)
    assert later.state is State.HELD and clm.asked == 1
    assert states(uow) == [
        (State.FAILED, "Server.Unavailable"),  # the dead worker's, settled by the retry
        (State.FAILED, "Server.Unavailable"),  # the repeat told to come back
        (State.HELD, None),
    ]


# --------------------------------------------------------------------------- CancelReservation


def test_cancel_once_then_the_original_cancellation_again(uow: MemoryUow) -> None:
    reserve(uow, ask(), Clm())
    asked: list[int] = []

    def clm() -> datetime:
        asked.append(1)
        return NOW + timedelta(seconds=len(asked))

    request = CancelRequest("NL-TNM", "DE*ICE*E1*1", "DEICE-R7", "changed route")
    first = cancel(uow, request, clm)
    again = cancel(uow, request, clm)
    assert first.state is again.state is State.CANCELLED and len(asked) == 1
    assert again.cancelled_at == first.cancelled_at == NOW + timedelta(seconds=1)
    assert first.cancel_reason == "changed route"
    with pytest.raises(GembusError) as raised:  # the reference is used up
        reserve(uow, ask(), Clm())
    assert raised.value.fault_code == "Client.DuplicateReservation"


@pytest.mark.parametrize(
    ("request_", "actor", "code"),
    [
        (CancelRequest("DE-BMW", "DE*ICE*E1*1", "DEICE-R7"), BMW, "Client.UnknownReservation"),
        (CancelRequest("NL-TNM", "DE*ICE*E1*1", "DEICE-R7"), BMW, "Client.CallerMismatch"),
        (CancelRequest("NL-TNM", "DE*ICE*E2*1", "DEICE-R7"), None, "Client.UnknownReservation"),
        (CancelRequest("NL-TNM", "DE*ICE*E1*1", "DEICE-R8"), None, "Client.UnknownReservation"),
    ],
)
def test_only_the_holder_cancels_its_own_reservation(
    uow: MemoryUow, request_: CancelRequest, actor: Partner | None, code: str
) -> None:
    reserve(uow, ask(), Clm())
    asked: list[int] = []
    with pytest.raises(GembusError) as raised:
        cancel(uow, request_, lambda: asked.append(1) or NOW, actor)  # type: ignore[func-returns-value]
    assert raised.value.fault_code == code and asked == []
    assert raised.value.field == (
        "providerId" if code == "Client.CallerMismatch" else "reservationId"
    )


def test_an_expired_reservation_is_not_cancellable(uow: MemoryUow) -> None:
    reserve(uow, ask(), Clm(Granted("DEICE-R7", NOW - timedelta(hours=1), NOW)))
    with pytest.raises(GembusError) as raised:
        cancel(uow, CancelRequest("NL-TNM", "DE*ICE*E1*1", "DEICE-R7"), lambda: NOW)
    assert fault(raised) == ("Client.ReservationNotCancellable", "reservationId")


# --------------------------------------------------------------------------- CLM faults


def _fault11(detail: str) -> etree._Element:
    return etree.fromstring(
        '<s:Fault xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><faultcode>s:Client'
        f"</faultcode><faultstring>no</faultstring><detail>{detail}</detail></s:Fault>"
    )


def test_a_clms_declared_fault_is_passed_on_with_its_code_message_and_field() -> None:
    found = partner_fault(
        _fault11(
            f'<c:gembusFault xmlns:c="{CMN}"><c:code>Client.EvseNotAvailable</c:code>'
            "<c:message>EVSE in use</c:message><c:field>evseId</c:field></c:gembusFault>"
        ),
        "ice-charging",
    )
    assert isinstance(found, PartnerFault) and found.is_client
    assert (found.fault_code, found.message, found.field) == (
        "Client.EvseNotAvailable",
        "EVSE in use",
        "evseId",
    )


def test_a_soap12_fault_with_a_server_code_passes_too() -> None:
    fault12 = etree.fromstring(
        '<e:Fault xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Code><e:Value>e:Receiver'
        '</e:Value></e:Code><e:Reason><e:Text xml:lang="en">busy</e:Text></e:Reason><e:Detail>'
        f'<c:gembusFault xmlns:c="{CMN}"><c:code>Server.PartnerTimeout</c:code><c:message>slow'
        "</c:message></c:gembusFault></e:Detail></e:Fault>"
    )
    found = partner_fault(fault12, "ice-charging")
    assert (found.fault_code, found.message, found.is_client) == (
        "Server.PartnerTimeout",
        "slow",
        False,
    )


@pytest.mark.parametrize(
    "detail",
    [
        "",
        f'<c:gembusFault xmlns:c="{CMN}"><c:code>Oops x</c:code><c:message>m</c:message>'
        "</c:gembusFault>",
    ],
)
def test_a_fault_outside_the_contract_is_a_server_fault_of_gembus(detail: str) -> None:
    found = partner_fault(_fault11(detail), "ice-charging")
    assert type(found) is ServerError and "ice-charging" in found.message
