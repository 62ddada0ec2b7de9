"""Customer contracts (``wsdl/customer_contracts.wsdl``) on the lxml path.

An EVSP uploads its customer contracts (full or delta, possibly in chunks) and reads them
back. Uploads can carry 10,000 contracts, so they are read straight from the validated tree
and answered with elements built directly, never bound to spyne objects. The answer is sent
after COMMIT.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from domain.clearing.customer_contracts import (
    Chunk,
    ContractQuery,
    ContractStatus,
    StoredContract,
    UploadMode,
    UploadOutcome,
    UploadRequest,
    list_customer_contracts,
    upload_customer_contracts,
)
from domain.marketplace.partners import DEFAULT_PAGE_SIZE, Page
from endpoints.customer_contracts.messages import (
    CMN,
    all_named,
    children,
    contract_in,
    contract_out,
    optional_timestamp,
    required,
    stamp,
    sub,
    sub_optional,
    text_of,
)
from gembus.context import RequestContext

NS = "urn:gembus:customer-contracts:v1"
_NSMAP = {"cc": NS, "rm": "urn:gembus:roaming:v1", "cmn": CMN}


def upload_contracts(request: etree._Element, ctx: RequestContext) -> etree._Element:
    upload = _upload_request(request)
    with ctx.uow() as uow:
        outcome = upload_customer_contracts(uow, ctx.actor, upload, ctx.now())
        uow.commit()
    ctx.log.info(
        "customer_contracts.upload",
        provider=upload.provider_id,
        upload_id=outcome.upload_id,
        status=outcome.status.value,
        applied=outcome.applied,
        rejected=outcome.rejected,
    )
    return _upload_response(outcome)


def get_contracts(request: etree._Element, ctx: RequestContext) -> etree._Element:
    found = children(request)
    status = text_of(found, "status")
    query = ContractQuery(
        text_of(found, "providerId"),
        text_of(found, "contractId"),
        ContractStatus(status) if status else None,
        optional_timestamp(found, "updatedSince"),
    )
    page = page_of(found.get("paging"))
    at = ctx.now()
    with ctx.uow() as uow:
        stored, total = list_customer_contracts(uow, ctx.actor, query, page, at)
    root = etree.Element(f"{{{NS}}}GetCustomerContractsResponse", nsmap=_NSMAP)
    for contract in stored:
        _stored_out(root, contract, at)
    page_info_out(root, NS, page, total)
    return root


# --------------------------------------------------------------------------- reading


def _upload_request(request: etree._Element) -> UploadRequest:
    found = children(request)
    chunk = found.get("chunk")
    return UploadRequest(
        provider_id=required(found, "providerId"),
        mode=UploadMode(required(found, "mode")),
        contracts=tuple(contract_in(c) for c in all_named(found.get("contracts"), "contract")),
        deletions=tuple(
            (d.text or "").strip() for d in all_named(found.get("deletions"), "contractId")
        ),
        upload_id=text_of(found, "uploadId"),
        chunk=_chunk(chunk) if chunk is not None else None,
    )


def _chunk(element: etree._Element) -> Chunk:
    found = children(element)
    return Chunk(int(required(found, "index")), int(required(found, "count")))


def page_of(paging: etree._Element | None) -> Page:
    """cmn:PageRequestType; defaults page 1 and 100 rows."""
    found = children(paging) if paging is not None else {}
    number = text_of(found, "page")
    size = text_of(found, "pageSize")
    return Page(int(number) if number else 1, int(size) if size else DEFAULT_PAGE_SIZE)


# --------------------------------------------------------------------------- writing


def _upload_response(outcome: UploadOutcome) -> etree._Element:
    root = etree.Element(f"{{{NS}}}UploadCustomerContractsResponse", nsmap={"cc": NS})
    sub(root, NS, "uploadId", outcome.upload_id)
    sub(root, NS, "status", outcome.status.value)
    counts = sub(root, NS, "counts")
    for name, value in (
        ("received", outcome.received),
        ("applied", outcome.applied),
        ("rejected", outcome.rejected),
        ("storedTotal", outcome.stored_total),
    ):
        sub(counts, NS, name, str(value))
    for result in outcome.results:
        element = sub(root, NS, "recordResult")
        sub(element, NS, "contractId", result.contract_id)
        sub(element, NS, "operation", result.operation.value)
        sub(element, NS, "result", result.result.value)
        sub_optional(element, NS, "reasonCode", result.reason.value if result.reason else None)
        sub_optional(element, NS, "field", result.field[:255] if result.field else None)
        sub_optional(element, NS, "message", result.message)
    sub(root, NS, "processedAt", stamp(outcome.processed_at))
    return root


def _stored_out(parent: etree._Element, stored: StoredContract, at: datetime) -> None:
    element = sub(parent, NS, "customerContract")
    sub(element, NS, "providerId", stored.provider_id)
    contract_out(element, NS, stored.contract, at)
    sub_optional(element, NS, "uploadId", stored.upload_id)
    sub(element, NS, "updatedAt", stamp(stored.updated_at))


def page_info_out(parent: etree._Element, ns: str, page: Page, total: int) -> None:
    info = sub(parent, ns, "pageInfo")
    sub(info, CMN, "page", str(page.number))
    sub(info, CMN, "pageSize", str(page.size))
    sub(info, CMN, "totalCount", str(total))


HANDLERS = {
    "UploadCustomerContracts": upload_contracts,
    "GetCustomerContracts": get_contracts,
}
