"""PushEvseStatus over SOAP (lxml path): operators push live status of their EVSEs.

domain/charging/status.py decides each record and publishes the changes on EvseStatusChanged
in the same transaction; the answer leaves after COMMIT.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from domain.charging.master_data import own_operator
from domain.charging.status import StatusUpdate, apply_statuses
from endpoints.evse_types import CMN, EV, append_results, read_status, text, timestamp
from gembus.context import RequestContext

NS = "urn:gembus:evse-status-push:v1"
_NSMAP = {"p": NS, "ev": EV, "cmn": CMN}


def push(request: etree._Element, ctx: RequestContext) -> etree._Element:
    updates = [
        StatusUpdate(text(e, "ev:evseId") or "", read_status(e))
        for e in request.iterfind("p:evseStatus", _NSMAP)
    ]
    now = ctx.now()
    with ctx.uow() as uow:
        operator = own_operator(ctx.actor, text(request, "p:operatorId") or "")
        outcome = apply_statuses(uow, operator, updates, now)
        uow.commit()
    ctx.log.info("evse.status_push", accepted=outcome.accepted, received=len(updates))
    root = etree.Element(f"{{{NS}}}PushEvseStatusResponse", nsmap=_NSMAP)
    etree.SubElement(root, f"{{{NS}}}messageId").text = ctx.message_id
    append_results(root, NS, outcome.results)
    etree.SubElement(root, f"{{{NS}}}processedAt").text = timestamp(now)
    return root


HANDLERS: dict[str, Callable[[etree._Element, RequestContext], etree._Element]] = {
    "PushEvseStatus": push,
}
