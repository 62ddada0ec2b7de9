"""ReserveEvse and CancelReservation (``wsdl/reservation.wsdl``), served to EVSPs.

gembus checks and records (domain/charging/reservation.py); the CLM of the EVSE's operator
decides. It is asked through the gateway in process (bus/relay.py) with the very request
the EVSP sent, as the contract says ("forwards the message unchanged"), and its answer is
read back for the record. The answer an EVSP gets is built from the record, so a repeat
answered from it reads exactly like the first answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from lxml import etree

from bus.relay import GatewayRelay
from domain.charging import reservation as rules
from domain.charging.reservation import CancelRequest, Granted, Reservation, ReservationRequest
from endpoints.customer_contracts.messages import (
    children,
    optional_timestamp,
    required,
    sub,
    sub_optional,
    text_of,
    timestamp,
    token_in,
)
from gembus.context import RequestContext

NS = "urn:gembus:reservation:v1"
_NSMAP = {"r": NS}
_T = TypeVar("_T")


def reserve_evse(request: etree._Element, ctx: RequestContext) -> etree._Element:
    asked = reservation_request(request)
    forward = forwarding(request, ctx, granted)
    held = rules.reserve(
        ctx.uow,
        ctx.actor,
        asked,
        ctx.message_id,
        ctx.now(),
        forward,
        agreements=ctx.shared.validator,
    )
    ctx.log.info(
        "reservation.held", reservation_id=held.reservation_id, evse=held.evse_id, id=held.id
    )
    return reserve_response(held)


def cancel_reservation(request: etree._Element, ctx: RequestContext) -> etree._Element:
    """CancelReservation, the same in both versions but for the namespace: answered in the
    request's."""
    found = children(request)
    asked = CancelRequest(
        required(found, "providerId"),
        required(found, "evseId"),
        required(found, "reservationId"),
        text_of(found, "reason"),
    )
    forward = forwarding(request, ctx, cancelled_at)
    cancelled = rules.cancel(ctx.uow, ctx.actor, asked, ctx.now(), forward)
    ctx.log.info("reservation.cancelled", reservation_id=cancelled.reservation_id)
    return cancel_response(asked, cancelled, etree.QName(request).namespace or NS)


def forwarding(
    request: etree._Element, ctx: RequestContext, read: Callable[[etree._Element], _T]
) -> Callable[[], _T]:
    """Asking the CLM, as the use case does it once it has checked what gembus can check."""
    relay = ctx.shared.relay
    assert isinstance(relay, GatewayRelay), "gembus.bootstrap sets up the relay"
    return lambda: read(relay.call(request, ctx))


# --------------------------------------------------------------------------- reading


def reservation_request(request: etree._Element) -> ReservationRequest:
    found = children(request)
    token = found.get("token")
    return ReservationRequest(
        provider_id=required(found, "providerId"),
        contract_id=required(found, "contractId"),
        evse_id=required(found, "evseId"),
        requested_expiry=timestamp(required(found, "requestedExpiry")),
        partner_reservation_id=text_of(found, "partnerReservationId"),
        requested_start=optional_timestamp(found, "requestedStart"),
        token=token_in(token) if token is not None else None,
    )


def granted(answer: etree._Element) -> Granted:
    """The CLM's ReserveEvseResponse (validated against the contract by the relay)."""
    found = children(answer)
    return Granted(
        required(found, "reservationId"),
        timestamp(required(found, "start")),
        timestamp(required(found, "expiry")),
    )


def cancelled_at(answer: etree._Element) -> datetime:
    """The CLM's CancelReservationResponse: when it cancelled (the first time)."""
    return timestamp(required(children(answer), "cancelledAt"))


# --------------------------------------------------------------------------- writing


def reserve_response(held: Reservation) -> etree._Element:
    assert held.granted_start is not None and held.granted_expiry is not None
    root = etree.Element(f"{{{NS}}}ReserveEvseResponse", nsmap=_NSMAP)
    held_out(root, NS, held)
    sub(root, NS, "start", utc(held.granted_start))
    sub(root, NS, "expiry", utc(held.granted_expiry))
    return root


def held_out(root: etree._Element, ns: str, held: Reservation) -> None:
    """The elements both versions' ReserveEvseResponse begin with."""
    assert held.reservation_id is not None
    sub(root, ns, "reservationId", held.reservation_id)
    sub(root, ns, "evseId", held.evse_id)  # as requested: a repeat's content is identical
    sub_optional(root, ns, "partnerReservationId", held.partner_reservation_id)


def cancel_response(asked: CancelRequest, cancelled: Reservation, ns: str = NS) -> etree._Element:
    assert cancelled.cancelled_at is not None
    root = etree.Element(f"{{{ns}}}CancelReservationResponse", nsmap={"r": ns})
    sub(root, ns, "reservationId", asked.reservation_id)
    sub(root, ns, "evseId", asked.evse_id)
    sub(root, ns, "cancelledAt", utc(cancelled.cancelled_at))
    return root


def utc(at: datetime) -> str:
    """The same instant in the same notation whether it came from the CLM or the record."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


HANDLERS: dict[str, Callable[[etree._Element, RequestContext], etree._Element]] = {
    "ReserveEvse": reserve_evse,
    "CancelReservation": cancel_reservation,
}
