"""A fake charge-location management system (CLM) of one EVSE operator.

The CLM implements gembus's canonical reservation contract (``wsdl/reservation.wsdl``,
``urn:gembus:reservation:v1``) as a real spyne service over SOAP 1.1, so a gembus gateway can
forward raw SOAP bytes to it and every answer validates against the canonical XSD:

* ``ReserveEvse`` for an EVSE of its own operator answers ``reservationId`` =
  ``f"{operator key}-R{n}"`` (``DEICE-R1``, ``DEICE-R2``, ...), the echoed ``evseId`` and
  ``partnerReservationId``, ``start`` = ``requestedStart`` (absent: now) and ``expiry`` =
  ``requestedExpiry``. A repeat with the same providerId and partnerReservationId returns the
  existing reservation (other content: ``Client.DuplicateReservation``).
* ``CancelReservation`` of a reservation it issued answers ``cancelledAt``; a repeat returns
  the original cancellation.
* Refusals are SOAP 1.1 Client faults whose detail is the WSDL's ``cmn:gembusFault`` (code,
  message, field): ``Client.EvseNotReservable`` for EVSE IDs in ``refuse``,
  ``Client.UnknownEvse`` for another operator's EVSE, ``Client.InvalidIdentifier``,
  ``Client.UnknownReservation``.

Every POST is recorded before the (optional) delay: in memory (``app.received``) and, when a
log path is given (argument or env var ``GEMBUS_FAKE_CLM_LOG``), as one JSON line per request
in that file, so a test in another process can read what the fake received (:func:`read_log`).

In-process: ``app = make_clm_app("DE*ICE")`` is a WSGI app; ``serve(app)`` runs it in a
background thread. As a real process (kill it to simulate "provider down")::

    python -m tests.fakes.clm --operator 'DE*ICE' --port 18001 [--delay 2] [--log /tmp/x]
        [--refuse 'DE*ICE*E1*1' ...] [--host 127.0.0.1] [--contract reservation_v2]

``contract="reservation_v2"`` (``--contract reservation_v2``) makes the fake a CLM that
implements version 2 of the family instead (``urn:gembus:reservation:v2``, the service in
:mod:`tests.fakes.clm_v2`), with the same state, behaviour and recording.

``--port 0`` picks a free port; the first stdout line is ``fake-clm listening on <base URL>``.
:func:`start_clm_process` does all of this and returns a handle with ``stop()``/``kill()``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spyne import DateTime, ServiceBase, Unicode, rpc

from domain.identifiers import EvseId, InvalidIdentifier, OperatorId, ProviderId
from tests.fakes import common
from tests.fakes.common import ReceivedRequest as ReceivedRequest
from tests.fakes.common import (
    RecordingApp,
    RecordingProcess,
    RunningFake,
    TokenType,
    gembus_fault,
    soap11_application,
)
from tests.fakes.common import read_log as read_log

RESERVATION_NS = "urn:gembus:reservation:v1"
LOG_ENV_VAR = "GEMBUS_FAKE_CLM_LOG"
#: The path the CLM "registers" as its endpoint; the fake answers POSTs on any path.
CLM_PATH = "/clm/reservation"

# Occurrences of xsd/reservation.xsd's elements (wrapped document/literal: the wrapper elements
# ReserveEvse / ReserveEvseResponse and their children are in the reservation namespace).
_Required = Unicode(min_occurs=1, nillable=False)
_Optional = Unicode(min_occurs=0, nillable=False)
_RequiredTime = DateTime(min_occurs=1, nillable=False)


# ---------------------------------------------------------------------------------- state


@dataclass
class Reservation:
    reservation_id: str
    evse_id: str
    provider_key: str
    contract_id: str
    partner_reservation_id: str | None
    start: datetime
    expiry: datetime
    cancelled_at: datetime | None = None


@dataclass
class ClmState:
    """What one fake CLM knows: its operator, the EVSEs it refuses, the reservations it holds."""

    operator_id: str
    refuse: frozenset[str]  # EVSE ID keys (upper case, no "*")
    operator_key: str = ""
    reservations: dict[str, Reservation] = field(default_factory=dict)
    by_partner_ref: dict[tuple[str, str], Reservation] = field(default_factory=dict)
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.operator_key = OperatorId.parse(self.operator_id).key

    def own_evse(self, evse_id: str) -> EvseId:
        """The parsed EVSE ID if it belongs to this operator; a gembus fault otherwise."""
        try:
            evse = EvseId.parse(evse_id)
        except InvalidIdentifier as exc:
            raise gembus_fault("Client.InvalidIdentifier", str(exc), "evseId") from None
        if evse.operator_key != self.operator_key:
            raise gembus_fault(
                "Client.UnknownEvse",
                f"EVSE {evse_id} is not operated by {self.operator_id}",
                "evseId",
            )
        return evse


def _evse_key(evse_id: str) -> str:
    try:
        return EvseId.parse(evse_id).key
    except InvalidIdentifier:
        return evse_id.replace("*", "").upper()


def _provider_key(provider_id: str) -> str:
    try:
        return ProviderId.parse(provider_id).key
    except InvalidIdentifier:
        raise gembus_fault("Client.InvalidIdentifier", "invalid providerId", "providerId") from None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------------------------- service


class ClmReservationService(ServiceBase):
    """urn:gembus:reservation:v1 as implemented by the EVSE operator's CLM."""

    @rpc(
        _Required,
        _Required,
        TokenType,
        _Required,
        _Optional,
        DateTime(nillable=False),
        _RequiredTime,
        _returns=(_Required, _Required, _Optional, _RequiredTime, _RequiredTime),
        _out_variable_names=("reservationId", "evseId", "partnerReservationId", "start", "expiry"),
    )
    def ReserveEvse(
        ctx: Any,
        providerId: str,
        contractId: str,
        token: TokenType | None,
        evseId: str,
        partnerReservationId: str | None,
        requestedStart: datetime | None,
        requestedExpiry: datetime,
    ) -> tuple[str, str, str | None, datetime, datetime]:
        reservation = reserve(
            ctx.app.fake_state,
            providerId,
            evseId,
            contractId,
            partnerReservationId,
            requestedStart,
            requestedExpiry,
        )
        return (
            reservation.reservation_id,
            reservation.evse_id,
            reservation.partner_reservation_id,
            reservation.start,
            reservation.expiry,
        )

    @rpc(
        _Required,
        _Required,
        _Required,
        _Optional,
        _returns=(_Required, _Required, _RequiredTime),
        _out_variable_names=("reservationId", "evseId", "cancelledAt"),
    )
    def CancelReservation(
        ctx: Any, providerId: str, evseId: str, reservationId: str, reason: str | None
    ) -> tuple[str, str, datetime]:
        return cancel(ctx.app.fake_state, providerId, evseId, reservationId)


def reserve(
    state: ClmState,
    provider_id: str,
    evse_id: str,
    contract_id: str,
    partner_reservation_id: str | None,
    requested_start: datetime | None,
    until: datetime | timedelta,
) -> Reservation:
    """ReserveEvse's effect, the same in both contract versions: idempotent per
    (providerId, partnerReservationId).

    ``until`` is v1's requestedExpiry, which a repeat must ask for again, or v2's length from
    the start, which a repeat need not repeat (it gets the reservation it made).
    """
    evse = state.own_evse(evse_id)
    if evse.key in state.refuse:
        raise gembus_fault(
            "Client.EvseNotReservable", f"EVSE {evse_id} cannot be reserved", "evseId"
        )
    provider_key = _provider_key(provider_id)
    start = requested_start or _now()
    expiry = until if isinstance(until, datetime) else start + until
    with state.lock:
        ref = (provider_key, partner_reservation_id) if partner_reservation_id else None
        existing = state.by_partner_ref.get(ref) if ref else None
        if existing is not None:
            same = (existing.evse_id, existing.contract_id) == (evse_id, contract_id)
            if not same or (isinstance(until, datetime) and existing.expiry != until):
                raise gembus_fault(
                    "Client.DuplicateReservation",
                    f"partnerReservationId {partner_reservation_id} was used for another "
                    "reservation",
                    "partnerReservationId",
                )
            return existing
        state.counter += 1
        reservation = Reservation(
            reservation_id=f"{state.operator_key}-R{state.counter}",
            evse_id=evse_id,
            provider_key=provider_key,
            contract_id=contract_id,
            partner_reservation_id=partner_reservation_id,
            start=start,
            expiry=expiry,
        )
        state.reservations[reservation.reservation_id] = reservation
        if ref:
            state.by_partner_ref[ref] = reservation
        return reservation


def cancel(
    state: ClmState, provider_id: str, evse_id: str, reservation_id: str
) -> tuple[str, str, datetime]:
    """CancelReservation's effect, the same in both contract versions: idempotent per ID."""
    evse = state.own_evse(evse_id)
    provider_key = _provider_key(provider_id)
    with state.lock:
        reservation = state.reservations.get(reservation_id)
        if (
            reservation is None
            or _evse_key(reservation.evse_id) != evse.key
            or reservation.provider_key != provider_key
        ):
            raise gembus_fault(
                "Client.UnknownReservation",
                f"no reservation {reservation_id} of {provider_id} on EVSE {evse_id}",
                "reservationId",
            )
        if reservation.cancelled_at is None:
            reservation.cancelled_at = _now()
        cancelled_at = reservation.cancelled_at
    return reservation.reservation_id, evse_id, cancelled_at


# ---------------------------------------------------------------------------------- WSGI app


class ClmApp(RecordingApp):
    """The fake CLM as a WSGI app: records every POST, waits ``delay_s``, lets spyne answer.

    A GET publishes the contract it implements (see :class:`tests.fakes.common.FakeApp`).
    """

    def __init__(
        self,
        operator_id: str,
        *,
        delay_s: float = 0.0,
        refuse: Iterable[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        contract: str = "reservation",
    ) -> None:
        self.operator_id = operator_id
        service, self.namespace = _service_for(contract)
        self.state = ClmState(operator_id, frozenset(_evse_key(e) for e in refuse or ()))
        log = log_path if log_path is not None else os.environ.get(LOG_ENV_VAR) or None
        super().__init__(
            soap11_application(service, tns=self.namespace, name="Reservation", state=self.state),
            description=f"fake CLM of {operator_id} ({self.namespace}, SOAP 1.1)",
            contract=contract,
            delay_s=delay_s,
            log_path=log,
        )

    @property
    def reservations(self) -> dict[str, Reservation]:
        return self.state.reservations


def _service_for(contract: str) -> tuple[type[ServiceBase], str]:
    """The spyne service and namespace of the reservation version the fake implements."""
    if contract == "reservation":
        return ClmReservationService, RESERVATION_NS
    if contract == "reservation_v2":
        from tests.fakes.clm_v2 import RESERVATION_V2_NS, ClmReservationServiceV2

        return ClmReservationServiceV2, RESERVATION_V2_NS
    raise ValueError(f"the fake CLM implements reservation or reservation_v2, not {contract!r}")


def make_clm_app(
    operator_id: str,
    *,
    delay_s: float = 0.0,
    refuse: set[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    contract: str = "reservation",
) -> ClmApp:
    """A fake CLM of ``operator_id`` (``DE*ICE``) as a WSGI app.

    ``refuse``: EVSE IDs answered with ``Client.EvseNotReservable`` (any notation of the same
    EVSE matches). ``delay_s``: seconds to sleep before answering each POST. ``log_path``
    (default: env var ``GEMBUS_FAKE_CLM_LOG``): file to append each received request to.
    ``contract``: ``reservation`` (v1) or ``reservation_v2``.
    """
    return ClmApp(operator_id, delay_s=delay_s, refuse=refuse, log_path=log_path, contract=contract)


# ---------------------------------------------------------------------------------- serving


def serve(app: Any, port: int = 0, host: str = "127.0.0.1") -> RunningFake:
    """Serve ``app`` on host:port (0: a free port) in a daemon thread; ``stop()`` ends it."""
    return common.serve(app, port, host, path=CLM_PATH)


class ClmProcess(RecordingProcess):
    """A fake CLM running as its own process (see :func:`start_clm_process`)."""

    module = "tests.fakes.clm"
    banner = "fake-clm"
    label = "fake CLM"
    path = CLM_PATH


def start_clm_process(
    operator_id: str,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    delay_s: float = 0.0,
    refuse: Iterable[str] = (),
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 15.0,
    contract: str = "reservation",
) -> ClmProcess:
    """Run ``python -m tests.fakes.clm`` and return once it listens (port 0: a free port)."""
    args = ["--operator", operator_id, "--host", host, "--port", str(port), "--delay", str(delay_s)]
    args += ["--contract", contract]
    for evse_id in refuse:
        args += ["--refuse", evse_id]
    if log_path is not None:
        args += ["--log", str(log_path)]
    return ClmProcess.start(args, log_path=log_path, startup_timeout=startup_timeout)


def main(argv: list[str] | None = None) -> None:
    parser = common.argument_parser(
        ClmProcess,
        "Fake CLM (urn:gembus:reservation:v1).",
        delay_help="seconds to wait per request",
        log_help=f"append requests here (or ${LOG_ENV_VAR})",
    )
    parser.add_argument("--operator", required=True, help="EVSE operator ID, e.g. DE*ICE")
    parser.add_argument(
        "--refuse", action="append", default=[], metavar="EVSE_ID", help="refuse this EVSE"
    )
    parser.add_argument(
        "--contract",
        choices=("reservation", "reservation_v2"),
        default="reservation",
        help="the version of the reservation family to implement",
    )
    args = parser.parse_args(argv)
    app = make_clm_app(
        args.operator,
        delay_s=args.delay,
        refuse=set(args.refuse),
        log_path=args.log,
        contract=args.contract,
    )
    common.run(app, args, ClmProcess)


if __name__ == "__main__":
    main()
