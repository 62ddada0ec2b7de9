"""ReserveEvse and CancelReservation in version 2 (``wsdl/reservation_v2.wsdl``), served to EVSPs.

The same rules and record as version 1 (endpoints/reservation/service.py): only the messages
differ. v2 groups contractId and token in ``customer`` and asks for a length,
``durationMinutes``, from requestedStart (absent: now) instead of an expiry; the answer grants
``grantedMinutes`` from ``start``. The relay routes the v2 request as ``/gateway/reservation_v2``
would: unchanged to a CLM on v2, converted (bus/transform.py) for a CLM on v1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from lxml import etree

from domain.charging import reservation as rules
from domain.charging.reservation import Granted, Reservation, ReservationRequest
from endpoints.customer_contracts.messages import (
    children,
    optional_timestamp,
    required,
    sub,
    text_of,
    timestamp,
    token_in,
)
from endpoints.reservation.service import cancel_reservation, forwarding, held_out, utc
from gembus.context import RequestContext

NS = "urn:gembus:reservation:v2"


def reserve_evse(request: etree._Element, ctx: RequestContext) -> etree._Element:
    now = ctx.now()
    asked = reservation_request(request, now)
    forward = forwarding(request, ctx, granted)
    held = rules.reserve(
        ctx.uow, ctx.actor, asked, ctx.message_id, now, forward, agreements=ctx.shared.validator
    )
    ctx.log.info(
        "reservation.held", reservation_id=held.reservation_id, evse=held.evse_id, id=held.id
    )
    return reserve_response(held)


def reservation_request(request: etree._Element, now: datetime) -> ReservationRequest:
    found = children(request)
    customer = children(found["customer"])
    token = customer.get("token")
    start = optional_timestamp(found, "requestedStart")
    duration = timedelta(minutes=int(required(found, "durationMinutes")))
    return ReservationRequest(
        provider_id=required(found, "providerId"),
        contract_id=required(customer, "contractId"),
        evse_id=required(found, "evseId"),
        requested_expiry=(start or now) + duration,
        partner_reservation_id=text_of(found, "partnerReservationId"),
        requested_start=start,
        token=token_in(token) if token is not None else None,
        duration=duration,
    )


def granted(answer: etree._Element) -> Granted:
    """The CLM's answer in v2 (converted from v1 by the relay when the CLM speaks v1)."""
    found = children(answer)
    start = timestamp(required(found, "start"))
    minutes = timedelta(minutes=int(required(found, "grantedMinutes")))
    return Granted(required(found, "reservationId"), start, start + minutes)


def reserve_response(held: Reservation) -> etree._Element:
    assert held.granted_start is not None and held.granted_expiry is not None
    root = etree.Element(f"{{{NS}}}ReserveEvseResponse", nsmap={"r": NS})
    held_out(root, NS, held)
    sub(root, NS, "start", utc(held.granted_start))
    minutes = (held.granted_expiry - held.granted_start) // timedelta(minutes=1)
    sub(root, NS, "grantedMinutes", str(minutes))
    return root


HANDLERS: dict[str, Callable[[etree._Element, RequestContext], etree._Element]] = {
    "ReserveEvse": reserve_evse,
    "CancelReservation": cancel_reservation,
}
