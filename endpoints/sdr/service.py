"""The sdr family (wsdl/sdr.wsdl): SubmitSdrs, CheckSdrs, GetPendingSdrs, ConfirmSdrs.

Thin on purpose, on the lxml path (PERFORMANCE.md §4 path b): decode from the validated tree,
run the use case of domain/clearing/sdr_forwarding.py in one unit of work, COMMIT, and only
then encode the answer -- an acknowledged SDR is durable, and so are its outbox rows.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from domain.clearing import sdr_forwarding as uc
from domain.clearing.sdr import Decision, SdrStatus
from domain.clearing.sdr_forwarding import AgreementCheck, Confirmation
from endpoints.sdr.messages import (
    CMN,
    S,
    confirm_response,
    decode_sdr,
    entries_response,
    page_of,
    parse_time,
    submit_response,
    text,
)
from gembus.context import RequestContext


def submit_sdrs(request: etree._Element, ctx: RequestContext) -> etree._Element:
    records = [decode_sdr(e, n) for n, e in enumerate(request.iterfind(f"{S}sdrs/{S}sdr"), 1)]
    operator_id = text(request, f"{S}operatorId") or ""
    with ctx.uow() as uow:
        lines = uc.submit_sdrs(uow, ctx.actor, operator_id, records, ctx.now(), _agreements(ctx))
        uow.commit()
    return submit_response(lines)


def _agreements(ctx: RequestContext) -> AgreementCheck:
    """B2B check through SRV 1967's in-process cache: a roaming agreement valid at ``at``."""
    validator = ctx.shared.validator

    def check(operator_id: str, provider_key: str, at: datetime) -> str | None:
        answer = validator.validate_roaming_agreement(operator_id, provider_key, at)
        if answer.valid:
            return None
        return (
            f"no roaming agreement valid at {at.isoformat()}: {answer.text or answer.reason.value}"
        )

    return check


def check_sdrs(request: etree._Element, ctx: RequestContext) -> etree._Element:
    statuses = [
        SdrStatus((e.text or "").strip()) for e in request.iterfind(f"{S}statuses/{S}status")
    ]
    period_element = request.find(f"{S}period")
    period = None
    if period_element is not None:
        period = (
            parse_time(period_element.findtext(f"{CMN}start") or "", "period/start"),
            parse_time(period_element.findtext(f"{CMN}end") or "", "period/end"),
        )
    sdr_ids = [(e.text or "").strip() for e in request.iterfind(f"{S}sdrIds/{S}sdrId")]
    page = page_of(request)
    with ctx.uow() as uow:
        entries, total = uc.check_sdrs(
            uow, ctx.actor, text(request, f"{S}operatorId"), statuses, period, sdr_ids, page
        )
    return entries_response("CheckSdrsResponse", entries, page, total)


def get_pending_sdrs(request: etree._Element, ctx: RequestContext) -> etree._Element:
    before = text(request, f"{S}receivedBefore")
    page = page_of(request)
    with ctx.uow() as uow:
        entries, total = uc.pending_sdrs(
            uow,
            ctx.actor,
            text(request, f"{S}providerId"),
            text(request, f"{S}operatorId"),
            parse_time(before, "receivedBefore") if before else None,
            page,
        )
    return entries_response("GetPendingSdrsResponse", entries, page, total)


def confirm_sdrs(request: etree._Element, ctx: RequestContext) -> etree._Element:
    confirmations = [
        _confirmation(c) for c in request.iterfind(f"{S}confirmations/{S}confirmation")
    ]
    with ctx.uow() as uow:
        lines = uc.confirm_sdrs(
            uow, ctx.actor, text(request, f"{S}providerId") or "", confirmations, ctx.now()
        )
        uow.commit()
    return confirm_response(lines)


def _confirmation(element: etree._Element) -> Confirmation:
    version = text(element, f"{S}version")
    return Confirmation(
        sdr_id=text(element, f"{S}sdrId") or "",
        decision=Decision(text(element, f"{S}decision") or ""),
        version=int(version) if version else None,
        reason_code=text(element, f"{S}reasonCode") or None,
        reason=text(element, f"{S}reason") or None,
    )


HANDLERS = {
    "SubmitSdrs": submit_sdrs,
    "CheckSdrs": check_sdrs,
    "GetPendingSdrs": get_pending_sdrs,
    "ConfirmSdrs": confirm_sdrs,
}
