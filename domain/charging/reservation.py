"""Reservation of charging points (GeM release 2; DOMAIN.md §3.4), as gembus serves it.

An EVSP reserves an EVSE for its customer at ``/services/reservation``; gembus checks what it
can know itself and hands the message, unchanged, to the reservation service the EVSE's
operator published (its CLM), through the gateway's own routing, contract check and
transaction log. The CLM decides; gembus records every request and its outcome here.

Checks, in order, each a declared fault naming the field:

1. the providerId is one of the caller's and the contract ID's provider prefix is that
   providerId (``Client.CallerMismatch``; a malformed ID is ``Client.InvalidIdentifier``);
2. a repeat (same providerId + partnerReservationId) with identical content is answered from
   the record without asking the CLM again; other content is ``Client.DuplicateReservation``;
3. the EVSE is in gembus's master data (``Client.UnknownEvse``) and reservable
   (``Client.EvseNotReservable``);
4. the period is sane: requestedStart (absent: now) not in the past, requestedExpiry after it
   (``Client.InvalidReservationPeriod``). gembus does not shorten a request longer than the
   EVSE's maxReservationMinutes and does not refuse it: the CLM shortens it to its maximum
   and answers the granted expiry, which is what gembus records and answers;
5. the EVSP and the EVSE's operator hold a valid roaming agreement (SRV 1967,
   ``Client.NoRoamingAgreement``; wsdl/reservation.wsdl lists it), unless the EVSP is the
   operator itself: reserving one's own EVSE for one's own customer is no roaming case;
6. routing and the caller's service contract with the operator's reservation service
   (SRV 1967) are the gateway's: see bus/relay.py. The CLM's refusals come back as its own
   declared faults (``Client.EvseNotAvailable``, ...).

Records. Every request that passes check 1 is recorded, but for a repeat answered from the
record. One that passes checks 2-4 is written ``pending`` before the CLM is asked (so a
concurrent twin finds it) and settles ``held``, ``refused`` (a Client fault, gembus's or the
CLM's) or ``failed`` (a Server fault: the CLM down, slow, broken); ``held`` becomes
``cancelled``. Refusals of checks 2-4 are written ``refused`` at once. An idempotency key
(providerId + partnerReservationId) belongs to its pending, held or cancelled reservation;
refused and failed attempts leave it free, so an EVSP may retry after a fault.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from domain.charging.master_data import CallerMismatchError
from domain.clearing.customer_contracts import Token, own_provider
from domain.identifiers import ContractId, EvseId, ProviderId
from domain.marketplace.partners import parse_identifier
from domain.marketplace.validation import Reason
from domain.partners import Partner
from gembus.errors import (
    ClientError,
    ConflictError,
    GembusError,
    NotAuthorizedError,
    NotFoundError,
    UnavailableError,
)

if TYPE_CHECKING:
    from domain.clearing.authorizer import AgreementChecker
    from domain.ports import UnitOfWork

#: How far in the past requestedStart may lie: the clocks of EVSP and gembus differ a little
#: (WS-Security accepts 300 s of difference for the same reason).
CLOCK_SKEW = timedelta(minutes=5)
#: A ``pending`` record older than this belongs to a worker that died while the CLM was
#: asked (gunicorn kills a worker after 30 s); a repeat may then try again.
PENDING_TIMEOUT = timedelta(minutes=2)


class State(enum.StrEnum):
    PENDING = "pending"
    HELD = "held"
    REFUSED = "refused"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: The states that own an idempotency key (the others leave it free for a retry).
LIVE_STATES = (State.PENDING, State.HELD, State.CANCELLED)


class NoRoamingAgreementError(ClientError):
    fault_code = "Client.NoRoamingAgreement"
    default_message = "the EVSP holds no valid roaming agreement with the EVSE's operator"


class EvseNotReservableError(ClientError):
    fault_code = "Client.EvseNotReservable"
    default_message = "the EVSE cannot be reserved"


class InvalidReservationPeriodError(ClientError):
    fault_code = "Client.InvalidReservationPeriod"
    default_message = "the reservation period is not usable"


class ReservationNotCancellableError(ClientError):
    fault_code = "Client.ReservationNotCancellable"
    default_message = "the reservation was used or has expired"


@dataclass(frozen=True)
class ReservationRequest:
    """ReserveEvse as the EVSP sent it (wire values; instants are aware)."""

    provider_id: str
    contract_id: str
    evse_id: str
    requested_expiry: datetime
    partner_reservation_id: str | None = None
    requested_start: datetime | None = None
    #: Compared for "identical content" only: gembus does not keep the token.
    token: Token | None = None
    #: Version 2 asks for a length (durationMinutes) instead of an expiry: the length is the
    #: content then, and ``requested_expiry`` is the start (absent: now) plus the length.
    duration: timedelta | None = None

    def content_hash(self) -> str:
        """What "identical content" means for a repeat: every field as sent, instants as
        instants (a v2 repeat without requestedStart asks for the same length, later)."""
        asked = self.duration.total_seconds() if self.duration else _instant(self.requested_expiry)
        fields = [
            self.provider_id,
            self.contract_id,
            self.evse_id,
            self.partner_reservation_id,
            _instant(self.requested_start),
            asked,
            _token_fields(self.token),
        ]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


@dataclass(frozen=True)
class Granted:
    """The CLM's answer to a ReserveEvse it accepted."""

    reservation_id: str
    start: datetime
    expiry: datetime


@dataclass(frozen=True)
class Reservation:
    """One recorded ReserveEvse and what became of it."""

    partner_id: str
    provider_id: str
    provider_key: str
    contract_id: str
    evse_id: str
    evse_key: str
    operator_key: str
    requested_expiry: datetime
    content_hash: str
    message_id: str
    created_at: datetime
    updated_at: datetime
    state: State = State.PENDING
    partner_reservation_id: str | None = None
    requested_start: datetime | None = None
    reservation_id: str | None = None
    granted_start: datetime | None = None
    granted_expiry: datetime | None = None
    fault_code: str | None = None
    fault_message: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class CancelRequest:
    provider_id: str
    evse_id: str
    reservation_id: str
    reason: str | None = None


@dataclass(frozen=True)
class _Asked:
    """A request whose identifiers parsed and whose providerId is the caller's."""

    request: ReservationRequest
    provider: ProviderId
    evse: EvseId


# --------------------------------------------------------------------------- ReserveEvse


def reserve(
    uow: Callable[[], UnitOfWork],
    actor: Partner,
    request: ReservationRequest,
    message_id: str,
    now: datetime,
    forward: Callable[[], Granted],
    *,
    agreements: AgreementChecker,
) -> Reservation:
    """ReserveEvse: the checks above, then ``forward`` (the CLM, through the gateway) once.

    Each step is its own short transaction: nothing is held open while the CLM is asked.
    """
    asked = _identify(actor, request)
    record = _new_record(actor, asked, message_id, now)
    try:
        claimed = _prepare(
            uow, asked, record, now, lambda: _check_agreement(agreements, actor, asked, now)
        )
    except GembusError as refusal:  # recorded too: the EVSP asked, gembus said no
        _write(uow, _settled(record, refusal, now))
        raise
    if claimed.state is State.HELD:  # answered from the record: the CLM is not asked again
        return claimed
    try:
        granted = forward()
    except Exception as exc:
        _write(uow, _settled(claimed, exc, now))
        raise
    held = replace(
        claimed,
        state=State.HELD,
        reservation_id=granted.reservation_id,
        granted_start=granted.start,
        granted_expiry=granted.expiry,
        updated_at=now,
    )
    _write(uow, held)
    return held


def _prepare(
    uow: Callable[[], UnitOfWork],
    asked: _Asked,
    record: Reservation,
    now: datetime,
    check_agreement: Callable[[], None],
) -> Reservation:
    """Checks 2-5: the recorded reservation of a repeat, or ``record`` claimed ``pending``."""
    with uow() as work:
        existing = work.reservations.by_partner_reference(
            record.provider_key, record.partner_reservation_id
        )
        if existing is not None and not _abandoned(existing, now):
            return _repeat(existing, record)
        _check_evse(work, asked)
    _check_period(asked.request, now)
    check_agreement()
    return _claim(uow, record, now)


def _identify(actor: Partner, request: ReservationRequest) -> _Asked:
    try:
        provider = own_provider(actor, request.provider_id)
    except NotAuthorizedError as exc:
        raise CallerMismatchError(exc.message, field="providerId") from exc
    contract = parse_identifier(ContractId.parse, request.contract_id, "contractId")  # check digit
    if contract.provider_key != provider.key:
        raise CallerMismatchError(
            f"contract {request.contract_id} is not a contract of {request.provider_id}",
            field="contractId",
        )
    evse = parse_identifier(EvseId.parse, request.evse_id, "evseId")
    return _Asked(request, provider, evse)


def _new_record(actor: Partner, asked: _Asked, message_id: str, now: datetime) -> Reservation:
    r = asked.request
    return Reservation(
        partner_id=actor.partner_id,
        provider_id=r.provider_id,
        provider_key=asked.provider.key,
        contract_id=r.contract_id,
        evse_id=r.evse_id,
        evse_key=asked.evse.key,
        operator_key=asked.evse.operator_key,
        requested_expiry=r.requested_expiry,
        content_hash=r.content_hash(),
        message_id=message_id,
        created_at=now,
        updated_at=now,
        partner_reservation_id=r.partner_reservation_id,
        requested_start=r.requested_start,
    )


def _repeat(existing: Reservation, record: Reservation) -> Reservation:
    """The answer to a repeat of a recorded reservation, or why there is none."""
    reference = existing.partner_reservation_id
    if existing.content_hash != record.content_hash:
        raise ConflictError(
            "Reservation",
            f"partnerReservationId {reference} was used for another reservation "
            f"({existing.reservation_id or 'not yet granted'}) with other content",
            field="partnerReservationId",
        )
    if existing.state is State.HELD:
        return existing
    if existing.state is State.CANCELLED:
        raise ConflictError(
            "Reservation",
            f"reservation {existing.reservation_id} (partnerReservationId {reference}) was "
            "cancelled; reserve again with a new partnerReservationId",
            field="partnerReservationId",
        )
    raise UnavailableError(
        f"reservation {reference} is being made right now; repeat it in a few seconds"
    )


def _check_evse(work: UnitOfWork, asked: _Asked) -> None:
    reservable = work.evses.reservable([asked.evse.key]).get(asked.evse.key)
    wire = asked.request.evse_id
    if reservable is None:
        raise NotFoundError("Evse", f"EVSE {wire} is not in gembus's master data", field="evseId")
    if not reservable:
        raise EvseNotReservableError(
            f"EVSE {wire} is not reservable (its master data says reservable = false)",
            field="evseId",
        )


def _check_period(request: ReservationRequest, now: datetime) -> None:
    start = request.requested_start or now
    if start < now - CLOCK_SKEW:
        raise InvalidReservationPeriodError(
            f"requestedStart {_instant(start)} lies in the past", field="requestedStart"
        )
    earliest = max(start, now)
    if request.requested_expiry <= earliest:
        after = "requestedStart" if request.requested_start else "now"
        raise InvalidReservationPeriodError(
            f"requestedExpiry {_instant(request.requested_expiry)} is not after {after} "
            f"({_instant(earliest)})",
            field="requestedExpiry",
        )


def _check_agreement(
    agreements: AgreementChecker, actor: Partner, asked: _Asked, now: datetime
) -> None:
    answer = agreements.validate_roaming_agreement(
        asked.evse.operator_key, asked.provider.key, now
    )
    if answer.operator_partner_id == actor.partner_id:
        return  # the EVSP's own EVSE: not a roaming case
    if not answer.valid:
        state = "none" if answer.reason is Reason.NO_CONTRACT else answer.reason.value.lower()
        raise NoRoamingAgreementError(
            f"{asked.request.provider_id} and the operator of {asked.request.evse_id} hold no "
            f"valid roaming agreement ({state.replace('_', ' ')})",
            field="evseId",
        )


def _abandoned(record: Reservation, now: datetime) -> bool:
    """A pending record whose worker died while asking the CLM (see PENDING_TIMEOUT)."""
    return record.state is State.PENDING and now - record.updated_at >= PENDING_TIMEOUT


def _claim(uow: Callable[[], UnitOfWork], record: Reservation, now: datetime) -> Reservation:
    """Write the record ``pending``, which takes its idempotency key; a twin that took the key
    first is answered as any repeat (an abandoned one is settled ``failed`` first)."""
    with uow() as work:
        found = work.reservations.by_partner_reference(
            record.provider_key, record.partner_reservation_id
        )
        if found is not None and _abandoned(found, now):
            work.reservations.update(_settled(found, _INTERRUPTED, now))
        elif found is not None:
            return _repeat(found, record)
        record_id = work.reservations.add(record)
        work.commit()
    if record_id is None:  # the key was taken between the read and the write
        with uow() as work:
            twin = work.reservations.by_partner_reference(
                record.provider_key, record.partner_reservation_id
            )
        if twin is None:
            raise UnavailableError("a concurrent request took the reservation's key; repeat it")
        return _repeat(twin, record)
    return replace(record, id=record_id)


_INTERRUPTED = UnavailableError("the worker asking the CLM stopped before it had the answer")


def _settled(record: Reservation, error: BaseException, now: datetime) -> Reservation:
    """``record`` refused (a Client fault) or failed (anything else), with the fault."""
    if isinstance(error, GembusError):
        code, message = error.fault_code, error.message
        state = State.FAILED if not error.is_client else State.REFUSED
    else:
        code, message, state = "Server", "internal error", State.FAILED
    return replace(record, state=state, fault_code=code, fault_message=message, updated_at=now)


def _write(uow: Callable[[], UnitOfWork], record: Reservation) -> None:
    with uow() as work:
        if record.id is None:
            work.reservations.add(record)
        else:
            work.reservations.update(record)
        work.commit()


# --------------------------------------------------------------------------- CancelReservation


def cancel(
    uow: Callable[[], UnitOfWork],
    actor: Partner,
    request: CancelRequest,
    now: datetime,
    forward: Callable[[], datetime],
) -> Reservation:
    """CancelReservation of a reservation the caller holds; a repeat answers the original
    cancellation without asking the CLM again. ``forward`` answers the CLM's cancelledAt."""
    held = _callers_reservation(uow, actor, request)
    if held.state is State.CANCELLED:
        return held
    if held.granted_expiry is not None and held.granted_expiry <= now:
        raise ReservationNotCancellableError(
            f"reservation {request.reservation_id} expired at {_instant(held.granted_expiry)}",
            field="reservationId",
        )
    cancelled_at = forward()
    cancelled = replace(
        held,
        state=State.CANCELLED,
        cancelled_at=cancelled_at,
        cancel_reason=request.reason,
        updated_at=now,
    )
    with uow() as work:
        if not work.reservations.cancel(cancelled):  # a twin cancelled it meanwhile
            twin = work.reservations.by_reservation_id(held.operator_key, held.reservation_id or "")
            return twin or cancelled
        work.commit()
    return cancelled


def _token_fields(token: Token | None) -> list[str | None]:
    if token is None:
        return []
    return [token.instance, token.token_type, token.sub_type, token.representation]


def _callers_reservation(
    uow: Callable[[], UnitOfWork], actor: Partner, request: CancelRequest
) -> Reservation:
    """The reservation the request names, if the caller holds it; another EVSP's is not
    named (unknown to the caller), nor one made elsewhere than through gembus."""
    try:
        provider = own_provider(actor, request.provider_id)
    except NotAuthorizedError as exc:
        raise CallerMismatchError(exc.message, field="providerId") from exc
    evse = parse_identifier(EvseId.parse, request.evse_id, "evseId")
    with uow() as work:
        held = work.reservations.by_reservation_id(evse.operator_key, request.reservation_id)
    holder = (actor.partner_id, provider.key, evse.key)
    if held is None or (held.partner_id, held.provider_key, held.evse_key) != holder:
        raise NotFoundError(
            "Reservation",
            f"{request.provider_id} holds no reservation {request.reservation_id} on EVSE "
            f"{request.evse_id} made through gembus",
            field="reservationId",
        )
    return held


def _instant(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()
