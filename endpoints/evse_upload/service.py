"""UploadEvseData over SOAP (lxml path): operators push their EVSE master data.

The request arrives validated against xsd/evse_upload.xsd. The handler checks the payload
fits the action, reads the records (endpoints/evse_types.py), lets domain/charging/
master_data.py decide each one, and answers after COMMIT. The answer is stored under the
upload's idempotency key (uploadId + part, else the content hash, DOMAIN.md §11): an identical
repeat gets it back with replayed = true and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from lxml import etree

from domain.charging.master_data import (
    Action,
    ApplyOutcome,
    InvalidActionPayloadError,
    InvalidFullLoadPartError,
    Reason,
    RecordResult,
    apply_deletes,
    apply_records,
    content_hash,
    own_operator,
)
from domain.identifiers import OperatorId
from domain.ports import UnitOfWork
from endpoints.evse_types import CMN, EV, append_results, read_record, text, timestamp, when
from gembus.context import RequestContext

NS = "urn:gembus:evse-upload:v1"
_NSMAP = {"u": NS, "ev": EV, "cmn": CMN}


def upload(request: etree._Element, ctx: RequestContext) -> etree._Element:
    action = Action(text(request, "u:actionType") or "")
    upload_id = text(request, "u:uploadId")
    part = _check_payload(request, action, upload_id)
    digest = content_hash(etree.tostring(request, method="c14n"))
    key = f"{upload_id}#{part}" if upload_id else f"sha256:{digest}"
    now = ctx.now()
    with ctx.uow() as uow:
        operator = own_operator(ctx.actor, text(request, "u:operatorId") or "")
        uow.evses.lock_operator(operator.key, operator.wire, now)  # replays decide in turn too
        stored = uow.evses.upload_replay(ctx.actor.partner_id, key)
        if stored is not None and stored[0] == digest:
            outcome, at = _load(stored[1])
            return _response(ctx, action, upload_id, outcome, at, replayed=True)
        outcome = _apply(uow, request, operator, action, now)
        uow.evses.record_upload(ctx.actor.partner_id, key, digest, _dump(outcome, now), now)
        uow.commit()
    ctx.log.info("evse.upload", action=action.value, accepted=outcome.accepted)
    return _response(ctx, action, upload_id, outcome, now, replayed=False)


def _check_payload(request: etree._Element, action: Action, upload_id: str | None) -> int:
    """The part number (1 for a single message); faults for payloads that do not fit."""
    has_records = request.find("u:evses", _NSMAP) is not None
    if action is Action.DELETE and has_records:
        raise InvalidActionPayloadError("delete carries evseIds, not evses", field="evses")
    if action is not Action.DELETE and not has_records:
        raise InvalidActionPayloadError(f"{action.value} carries evses", field="evseIds")
    part = request.find("u:fullLoadPart", _NSMAP)
    if part is None:
        return 1
    if action is not Action.FULL_LOAD:
        raise InvalidActionPayloadError("fullLoadPart needs fullLoad", field="fullLoadPart")
    if upload_id is None:
        raise InvalidFullLoadPartError("a full load in parts needs an uploadId", field="uploadId")
    number, last = int(text(part, "u:partNumber") or 0), text(part, "u:lastPart") in ("true", "1")
    if (number, last) != (1, True):
        raise InvalidFullLoadPartError(
            "full loads in several parts are not accepted yet; send one message of at most "
            "500 records, or insert/update deltas",
            field="fullLoadPart/partNumber",
        )
    return number


def _apply(
    uow: UnitOfWork, request: etree._Element, operator: OperatorId, action: Action, now: datetime
) -> ApplyOutcome:
    if action is Action.DELETE:
        wires = [e.text or "" for e in request.iterfind("u:evseIds/u:evseId", _NSMAP)]
        return apply_deletes(uow, operator, wires, now)
    items = [read_record(e) for e in request.iterfind("u:evses/u:evse", _NSMAP)]
    return apply_records(uow, operator, action, items, now)


def _dump(outcome: ApplyOutcome, at: datetime) -> str:
    results = [[r.evse_wire, r.reason, r.field, r.message] for r in outcome.results]
    return json.dumps(
        {"results": results, "deleted": outcome.deleted_by_full_load, "at": at.isoformat()}
    )


def _load(stored: str) -> tuple[ApplyOutcome, datetime]:
    data = json.loads(stored)
    results = [RecordResult(w, Reason(r) if r else None, f, m) for w, r, f, m in data["results"]]
    at = when(data["at"])
    assert at is not None
    return ApplyOutcome(results, data["deleted"]), at


def _response(
    ctx: RequestContext,
    action: Action,
    upload_id: str | None,
    outcome: ApplyOutcome,
    at: datetime,
    *,
    replayed: bool,
) -> etree._Element:
    root = etree.Element(f"{{{NS}}}UploadEvseDataResponse", nsmap=_NSMAP)
    etree.SubElement(root, f"{{{NS}}}messageId").text = ctx.message_id
    if upload_id is not None:
        etree.SubElement(root, f"{{{NS}}}uploadId").text = upload_id
    etree.SubElement(root, f"{{{NS}}}actionType").text = action.value
    etree.SubElement(root, f"{{{NS}}}replayed").text = "true" if replayed else "false"
    if action is Action.FULL_LOAD:
        etree.SubElement(root, f"{{{NS}}}fullLoadCommitted").text = "true"
        etree.SubElement(root, f"{{{NS}}}deletedByFullLoad").text = str(
            outcome.deleted_by_full_load or 0
        )
    append_results(root, NS, outcome.results)
    etree.SubElement(root, f"{{{NS}}}processedAt").text = timestamp(at)
    return root


HANDLERS: dict[str, Callable[[etree._Element, RequestContext], etree._Element]] = {
    "UploadEvseData": upload,
}
