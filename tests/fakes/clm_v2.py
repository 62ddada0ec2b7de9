"""The fake CLM's reservation service in version 2 (``urn:gembus:reservation:v2``).

Same behaviour and state as the v1 service in :mod:`tests.fakes.clm` (reservation IDs
``f"{operator key}-R{n}"``, idempotent repeats by partnerReservationId, the same faults),
spoken in the v2 contract (``wsdl/reservation_v2.wsdl``): the customer's contractId and token
arrive in one ``customer`` element, the length as ``durationMinutes``, and the answer grants
``grantedMinutes`` (the requested length; capped to ``MAX_MINUTES``) from ``start``.

Use it through the v1 module: ``make_clm_app("IT*VTW", contract="reservation_v2")`` or
``python -m tests.fakes.clm --operator 'IT*VTW' --contract reservation_v2``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from spyne import ComplexModel, DateTime, Integer, ServiceBase, Unicode, rpc

from tests.fakes.clm import _Optional, _Required, _RequiredTime, cancel, reserve
from tests.fakes.common import TokenType

RESERVATION_V2_NS = "urn:gembus:reservation:v2"
#: The longest reservation this CLM grants (the EVSEs' maxReservationMinutes).
MAX_MINUTES = 120

_Minutes = Integer(min_occurs=1, nillable=False)


class CustomerType(ComplexModel):
    """xsd/reservation_v2.xsd CustomerType: contractId and the optional token, in v2's namespace
    (the token's children are in the common namespace, as TokenType says)."""

    __namespace__ = RESERVATION_V2_NS
    _type_info = [
        ("contractId", Unicode(min_occurs=1, nillable=False)),
        ("token", TokenType),
    ]


class ClmReservationServiceV2(ServiceBase):
    """urn:gembus:reservation:v2 as implemented by the EVSE operator's CLM."""

    @rpc(
        _Required,
        CustomerType.customize(min_occurs=1, nillable=False),
        _Required,
        _Optional,
        DateTime(nillable=False),
        _Minutes,
        _returns=(_Required, _Required, _Optional, _RequiredTime, _Minutes),
        _out_variable_names=(
            "reservationId",
            "evseId",
            "partnerReservationId",
            "start",
            "grantedMinutes",
        ),
    )
    def ReserveEvse(
        ctx: Any,
        providerId: str,
        customer: CustomerType,
        evseId: str,
        partnerReservationId: str | None,
        requestedStart: datetime | None,
        durationMinutes: int,
    ) -> tuple[str, str, str | None, datetime, int]:
        reservation = reserve(
            ctx.app.fake_state,
            providerId,
            evseId,
            customer.contractId,
            partnerReservationId,
            requestedStart,
            timedelta(minutes=min(int(durationMinutes), MAX_MINUTES)),
        )
        minutes = int((reservation.expiry - reservation.start).total_seconds() // 60)
        return (
            reservation.reservation_id,
            reservation.evse_id,
            reservation.partner_reservation_id,
            reservation.start,
            minutes,
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
