"""What every marketplace page shares: committing a change, reporting a refused one, paging.

A page runs exactly one use case per POST inside the request's unit of work (auth.signed_in);
``commit`` ends it and drops SRV 1967's cached answers, as the SOAP endpoints do after every
change to services, offerings, contracts or agreements.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from flask import abort, flash, request

from gembus.errors import GembusError, NotFoundError
from persistence.unit_of_work import SqlUnitOfWork
from ui import auth

#: Domain field paths -> the words a page uses for them in a flash message.
FIELD_LABELS = {
    "serviceId": "Service",
    "offeringId": "Offering",
    "serviceContractId": "Contract",
    "roamingAgreementId": "Roaming agreement",
    "targetState": "Lifecycle",
    "month": "Month",
    "partnerId": "Partner",
    "reason": "Reason",
    "reference": "Your reference",
}


def commit(uow: SqlUnitOfWork) -> None:
    """Commit the request's change and make every worker's contract validator re-read it."""
    uow.commit()
    services = auth.gembus().services
    if services is not None:
        services.validator.invalidate()


def flash_refusal(error: GembusError) -> None:
    """A refused action as an error message that names the field it concerns."""
    label = FIELD_LABELS.get((error.field or "").split("/")[0])
    flash(f"{label}: {error.message}" if label else _sentence(error.message), "error")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def not_found_unless_client(error: GembusError) -> None:
    """An unknown or hidden record is a 404 page, exactly like a mistyped URL."""
    if isinstance(error, NotFoundError):
        abort(404, description=_sentence(error.message) + ".")


def page_number() -> int:
    """The ?page= argument, 1 for anything that is not a positive number."""
    raw = request.args.get("page", "1")
    return int(raw) if raw.isdecimal() and int(raw) >= 1 else 1


@dataclass(frozen=True)
class Paging:
    page: int
    pages: int
    total: int

    @classmethod
    def of(cls, page: int, total: int, size: int) -> Paging:
        return cls(page, max(1, math.ceil(total / size)), total)


def legal_names(uow: SqlUnitOfWork, partner_ids: Iterable[str]) -> dict[str, str]:
    """Partner ID -> legal name for the counterparts a page lists (IDs alone mean little to
    a buyer); a partner that no longer exists keeps its ID."""
    names = {}
    for partner_id in set(partner_ids):
        partner = uow.partners.get(partner_id)
        names[partner_id] = partner.data.legal_name if partner else partner_id
    return names


def back(default: str) -> str:
    """Where a POST returns: the page it came from (a local /ui path) or ``default``."""
    return auth.safe_next(request.form.get("back")) or default
