"""Pulling EVSE master data and live status from an operator's CLM (DOMAIN.md §3.2, §3.3).

Each CLM implements ProvideEVSE-MasterData (``wsdl/evse_masterdata.wsdl``) and
ProvideEVSEStatusData (``wsdl/evse_status.wsdl``) at the endpoints it registered; gembus
calls them. This module is the wire side only: it walks every page of a full, delta or status
read and hands back what the CLM sent, page by page, after checking it. Storing it (and
deciding what a fullLoad replaces) belongs to the caller.

**Nothing unchecked gets through.** Every answer is parsed without DTDs, entities or network
access and its Body child validated against the canonical XSD (the contract's compiled
``lxml.etree.XMLSchema``, built once per process by :mod:`bus.contracts`) *before* any record
of the page is yielded; the paging is checked against the contract too (page number, page
size, a steady totalCount, the row count of each page). Every failure raises one
:class:`ClmPullError` whose :class:`PullFailure` kind says what went wrong. A caller that
stages the yielded records and commits only when the iteration ends without an error can
never store garbage from a failing CLM. No retries here (STYLE.md 11): a ``Client.
SnapshotExpired`` or ``Client.DeltaNotAvailable`` fault is for the caller's pull job to
answer (restart the full read; fall back to a full read).

**Why pycurl and not zeep.** A full pull moves 100,000 records of ~60 elements each. zeep
would turn every one into Python objects (several times the cost of the lxml parse, and the
records would have to be turned back into XML or into a model this layer must not own);
here the records stay lxml elements, which the caller reads with XPath or maps to its own
model. The HTTP hop is :class:`bus.forward.Forwarder`, the house's libcurl client: strict
total timeouts without signals, a reply-size cap, a kept-alive connection per thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Generic, TypeVar

from lxml import etree

from bus.contracts import Contract, all_contracts
from bus.forward import Forwarder, ForwardError, ForwardFailure
from bus.soap import SOAP11_ENV, SOAP12_ENV, SoapVersion, build_envelope

MASTERDATA_NS = "urn:gembus:evse-masterdata:v1"
STATUS_NS = "urn:gembus:evse-status:v1"
EVSE_NS = "urn:gembus:evse:v1"
COMMON_NS = "urn:gembus:common:v1"
#: The contract's page-size ceiling (cmn:PageSizeType).
MAX_PAGE_SIZE = 1000
#: The most IDs GetEvseStatusById takes (DOMAIN.md §9.2, OICP's cap).
MAX_STATUS_IDS = 100

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_blank_text=False,
)
_M = f"{{{MASTERDATA_NS}}}"
_S = f"{{{STATUS_NS}}}"
_E = f"{{{EVSE_NS}}}"
_C = f"{{{COMMON_NS}}}"


class PullFailure(Enum):
    """Why a pull failed; each kind comes from one place in :meth:`_Endpoint.call`."""

    UNREACHABLE = "unreachable"  # no connection (refused, DNS, connect timeout)
    TIMEOUT = "timeout"  # connected, but no complete answer within the timeout
    TOO_LARGE = "too_large"  # the answer exceeded the reply-size cap
    HTTP_ERROR = "http_error"  # a non-200 status without a SOAP fault
    NOT_XML = "not_xml"  # the body is not well-formed XML
    SCHEMA_INVALID = "schema_invalid"  # not a SOAP envelope, or the Body child breaks the XSD
    FAULT = "fault"  # a SOAP fault; ``fault_code`` holds the gembus code
    INCONSISTENT = "inconsistent"  # schema-valid, but the pages break the paging contract


class ClmPullError(Exception):
    """A CLM answer that gembus must not use; ``kind`` says why, ``detail`` says how."""

    def __init__(
        self,
        kind: PullFailure,
        detail: str,
        *,
        operation: str = "",
        page: int | None = None,
        http_status: int | None = None,
        fault_code: str | None = None,
    ) -> None:
        where = f"{operation} page {page}" if page is not None else operation
        super().__init__(f"{kind.value}: {where}: {detail}" if where else f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        self.operation = operation
        self.page = page
        self.http_status = http_status
        self.fault_code = fault_code


# ---------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class EvseChange:
    """One master-data change (m:EvseChangeType); ``evse`` is the full record, None on delete."""

    evse_id: str
    delta_type: str  # insert | update | delete
    changed_at: datetime
    evse: etree._Element | None


@dataclass(frozen=True)
class EvseStatus:
    """One live status (ev:EvseStatusType), the wire values; expiry is the reader's business."""

    evse_id: str
    major: str
    minor: str | None
    ttl: datetime | None


@dataclass(frozen=True)
class EvseStatusLookup:
    """One answer of GetEvseStatusById; ``status`` is None when the CLM does not know the ID."""

    evse_id: str
    status: EvseStatus | None


@dataclass(frozen=True)
class PullProgress:
    """Reported after each validated page, before its records are yielded."""

    operation: str
    page: int
    pages: int
    received: int  # records so far, this page included
    total: int


ProgressCallback = Callable[[PullProgress], None]
T = TypeVar("T")


class Pull(Generic[T]):
    """The records of one paged read, fetched lazily as it is iterated (once).

    ``as_of`` (page 1's asOf: the ``since`` of the next delta) and ``total`` are known after
    the first page; ``complete`` is true only when every page arrived and checked out.
    """

    def __init__(self, pages: Callable[[Pull[T]], Iterator[list[T]]]) -> None:
        self._pages = pages
        self._started = False
        self.as_of: datetime | None = None
        self.total: int | None = None
        self.pages_read = 0
        self.complete = False

    def __iter__(self) -> Iterator[T]:
        for items in self.pages():
            yield from items

    def pages(self) -> Iterator[list[T]]:
        """The records page by page, each page's once it checked out (for a caller that
        stores a page at a time); iterate the pull or its pages once."""
        if self._started:
            raise RuntimeError("a pull can be iterated once")
        self._started = True
        yield from self._pages(self)
        self.complete = True


# ---------------------------------------------------------------------------------- SOAP hop


class _Endpoint:
    """One family's operations at one CLM URL: POST, classify, validate."""

    def __init__(
        self, url: str, contract: Contract, timeout_s: float, forwarder: Forwarder | None
    ) -> None:
        self.url = url
        self.contract = contract
        self.timeout_s = timeout_s
        self.forwarder = forwarder or Forwarder(max_reply_bytes=64 * 1024 * 1024)

    def call(self, name: str, request: etree._Element, page: int | None = None) -> etree._Element:
        """The operation's response element, checked against the canonical XSD."""
        operation = self.contract.operation_named(name)
        schema = self.contract.schema
        if not schema.validate(request):
            raise ValueError(f"{name} request breaks the XSD: {_first_error(schema)}")
        body = build_envelope(SoapVersion.SOAP11, request)
        try:
            reply = self.forwarder.post(
                self.url,
                body,
                SoapVersion.SOAP11.content_type,
                f'"{operation.soap_action}"',
                self.timeout_s,
            )
        except ForwardError as exc:
            raise ClmPullError(_KIND[exc.kind], exc.detail, operation=name, page=page) from exc
        try:
            return interpret(reply.status, reply.body, operation.output_element, schema)
        except ClmPullError as exc:
            raise ClmPullError(
                exc.kind,
                exc.detail,
                operation=name,
                page=page,
                http_status=exc.http_status,
                fault_code=exc.fault_code,
            ) from exc


_KIND = {
    ForwardFailure.UNREACHABLE: PullFailure.UNREACHABLE,
    ForwardFailure.TIMEOUT: PullFailure.TIMEOUT,
    ForwardFailure.TOO_LARGE: PullFailure.TOO_LARGE,
}


def interpret(status: int, body: bytes, expected: str, schema: etree.XMLSchema) -> etree._Element:
    """The Body child of a CLM's answer if it is the ``expected`` element (Clark notation)
    and valid per ``schema``; a :class:`ClmPullError` of the right kind otherwise."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        if status != 200:
            raise _http_error(status, body) from exc
        raise ClmPullError(
            PullFailure.NOT_XML, str(exc) or "empty body", http_status=status
        ) from exc
    child = _body_child(root, status, body)
    if etree.QName(child).localname == "Fault" and child.tag in _FAULT_TAGS:
        raise _fault(child, status)
    if status != 200:
        raise _http_error(status, body)
    if child.tag != expected:
        raise ClmPullError(
            PullFailure.SCHEMA_INVALID, f"expected {expected}, got {child.tag}", http_status=status
        )
    if not schema.validate(child):
        raise ClmPullError(PullFailure.SCHEMA_INVALID, _first_error(schema), http_status=status)
    return child


_FAULT_TAGS = (f"{{{SOAP11_ENV}}}Fault", f"{{{SOAP12_ENV}}}Fault")


def _body_child(root: etree._Element, status: int, body: bytes) -> etree._Element:
    version = SoapVersion.from_namespace(etree.QName(root).namespace)
    problem = None
    if root.getroottree().docinfo.internalDTD is not None:
        problem = "a SOAP message must not carry a DTD"
    elif version is None or etree.QName(root).localname != "Envelope":
        problem = f"not a SOAP envelope: {root.tag}"
    else:
        soap_body = root.find(f"{{{version.value}}}Body")
        children = [c for c in soap_body if isinstance(c.tag, str)] if soap_body is not None else []
        if len(children) == 1:
            return children[0]
        problem = f"the SOAP Body has {len(children)} element children, not 1"
    if status != 200:
        raise _http_error(status, body)
    raise ClmPullError(PullFailure.SCHEMA_INVALID, problem, http_status=status)


def _fault(fault: etree._Element, status: int) -> ClmPullError:
    """The gembus code from the fault detail (cmn:gembusFault), else the SOAP fault code."""
    code = fault.findtext(f".//{_C}gembusFault/{_C}code")
    message = fault.findtext(f".//{_C}gembusFault/{_C}message")
    if code is None:  # a foreign stack's fault: SOAP 1.1 faultcode or SOAP 1.2 Code/Value
        raw = fault.findtext("faultcode") or fault.findtext(f".//{{{SOAP12_ENV}}}Value") or ""
        code = raw.rpartition(":")[2] or "Server"
    if message is None:
        message = fault.findtext("faultstring") or fault.findtext(f".//{{{SOAP12_ENV}}}Text") or ""
    return ClmPullError(
        PullFailure.FAULT, f"{code}: {message}", http_status=status, fault_code=code.strip()
    )


def _http_error(status: int, body: bytes) -> ClmPullError:
    snippet = body[:200].decode("utf-8", "replace").strip()
    return ClmPullError(PullFailure.HTTP_ERROR, f"HTTP {status}: {snippet}", http_status=status)


def _first_error(schema: etree.XMLSchema) -> str:
    errors = list(schema.error_log)  # type: ignore[call-overload]  # lxml-stubs: iterable
    return f"line {errors[0].line}: {errors[0].message}" if errors else "invalid"


# ---------------------------------------------------------------------------------- paging


@dataclass(frozen=True)
class _PageSpec:
    """How one paged operation is asked and answered."""

    operation: str
    namespace: str
    item_tag: str  # Clark name of one record in the response
    #: element sent back on pages 2..n with page 1's asOf (snapshotAt or until)
    echo: str


def _request(
    spec: _PageSpec,
    operator_ids: Iterable[str] | None,
    bounds: list[tuple[str, str]],
    page: int,
    page_size: int,
) -> etree._Element:
    ns = spec.namespace
    request = etree.Element(
        f"{{{ns}}}{spec.operation}", nsmap={"m": ns, "ev": EVSE_NS, "cmn": COMMON_NS}
    )
    ids = list(operator_ids or ())
    if ids:
        holder = etree.SubElement(request, f"{{{ns}}}operatorIds")
        for operator_id in ids:
            etree.SubElement(holder, f"{_E}operatorId").text = operator_id
    for name, value in bounds:
        etree.SubElement(request, f"{{{ns}}}{name}").text = value
    paging = etree.SubElement(request, f"{{{ns}}}paging")
    etree.SubElement(paging, f"{_C}page").text = str(page)
    etree.SubElement(paging, f"{_C}pageSize").text = str(page_size)
    return request


def _walk(
    endpoint: _Endpoint,
    spec: _PageSpec,
    pull: Pull[T],
    *,
    operator_ids: Iterable[str] | None,
    first_bounds: list[tuple[str, str]],
    page_size: int,
    convert: Callable[[etree._Element], T],
    on_progress: ProgressCallback | None,
) -> Iterator[list[T]]:
    """Ask page 1, then pages 2..n with page 1's asOf echoed and its page size."""
    ids = list(operator_ids or ())
    response = endpoint.call(spec.operation, _request(spec, ids, first_bounds, 1, page_size), 1)
    as_of_text, size, total = _page_header(response, spec, 1)
    pull.as_of, pull.total = _datetime(as_of_text), total
    pages = max(1, math.ceil(total / size))
    bounds = [*first_bounds, (spec.echo, as_of_text)]
    received = 0
    for page in range(1, pages + 1):
        if page > 1:
            request = _request(spec, ids, bounds, page, size)
            response = endpoint.call(spec.operation, request, page)
            _check_page(response, spec, page, size, total)
        items = _page_items(response, spec, page, size, total)
        received += len(items)
        pull.pages_read = page
        if on_progress is not None:
            on_progress(PullProgress(spec.operation, page, pages, received, total))
        yield [convert(item) for item in items]


def _page_header(response: etree._Element, spec: _PageSpec, page: int) -> tuple[str, int, int]:
    info = response.find(f"{{{spec.namespace}}}pageInfo")
    as_of = response.findtext(f"{{{spec.namespace}}}asOf")
    assert info is not None and as_of is not None  # required by the XSD, validated
    if int(info.findtext(f"{_C}page") or 0) != page:
        raise _inconsistent(spec, page, f"pageInfo/page is {info.findtext(f'{_C}page')}")
    return (
        as_of.strip(),
        int(info.findtext(f"{_C}pageSize") or 0),
        int(info.findtext(f"{_C}totalCount") or 0),
    )


def _check_page(
    response: etree._Element, spec: _PageSpec, page: int, size: int, total: int
) -> None:
    _, page_size, page_total = _page_header(response, spec, page)
    if (page_size, page_total) != (size, total):
        raise _inconsistent(
            spec,
            page,
            f"pageSize/totalCount changed from {size}/{total} to {page_size}/{page_total}",
        )


def _page_items(
    response: etree._Element, spec: _PageSpec, page: int, size: int, total: int
) -> list[etree._Element]:
    items = response.findall(spec.item_tag)
    expected = max(0, min(size, total - (page - 1) * size))
    if len(items) != expected:
        raise _inconsistent(spec, page, f"{len(items)} rows, expected {expected} of {total}")
    return items


def _inconsistent(spec: _PageSpec, page: int, detail: str) -> ClmPullError:
    return ClmPullError(PullFailure.INCONSISTENT, detail, operation=spec.operation, page=page)


# ---------------------------------------------------------------------------------- wire values


def _datetime(text: str) -> datetime:
    """xs:dateTime as an aware datetime; no offset means UTC (OCHP sends UTC)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:  # schema-valid but beyond Python (year 0, 24:00:00)
        raise ClmPullError(PullFailure.SCHEMA_INVALID, f"unusable xs:dateTime {text!r}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _xs_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("a point in time for the CLM needs a UTC offset")
    return value.isoformat()


def _status(element: etree._Element, evse_id: str | None = None) -> EvseStatus:
    ttl = element.findtext(f"{_E}ttl")
    return EvseStatus(
        evse_id=evse_id if evse_id is not None else element.findtext(f"{_E}evseId") or "",
        major=element.findtext(f"{_E}major") or "",
        minor=element.findtext(f"{_E}minor"),
        ttl=_datetime(ttl) if ttl is not None else None,
    )


def _change(element: etree._Element) -> EvseChange:
    return EvseChange(
        evse_id=element.findtext(f"{_M}evseId") or "",
        delta_type=element.findtext(f"{_M}deltaType") or "",
        changed_at=_datetime(element.findtext(f"{_M}changedAt") or ""),
        evse=element.find(f"{_M}evse"),
    )


def _lookup(element: etree._Element) -> EvseStatusLookup:
    evse_id = element.findtext(f"{_E}evseId") or ""
    status = element.find(f"{_E}status")
    found = element.findtext(f"{_E}result") == "found" and status is not None
    return EvseStatusLookup(
        evse_id, _status(status, evse_id) if found and status is not None else None
    )


def _record(element: etree._Element) -> etree._Element:
    return element


# ---------------------------------------------------------------------------------- clients

_FULL = _PageSpec("GetEvseMasterData", MASTERDATA_NS, f"{_M}evse", "snapshotAt")
_DELTA = _PageSpec("GetEvseMasterDataDelta", MASTERDATA_NS, f"{_M}evseChange", "until")
_STATUS = _PageSpec("GetEvseStatus", STATUS_NS, f"{_S}evseStatus", "until")


class EvseMasterDataClient:
    """ProvideEVSE-MasterData at one CLM endpoint.

    ``timeout_s`` bounds each request (connect, answer and transfer); ``page_size`` is what
    gembus asks for (the CLM may serve fewer; pages 2..n ask for the size it used).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        page_size: int = MAX_PAGE_SIZE,
        forwarder: Forwarder | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        self.page_size = page_size
        self._endpoint = _Endpoint(url, all_contracts()["evse_masterdata"], timeout_s, forwarder)

    def full_pull(
        self,
        operator_ids: Iterable[str] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Pull[etree._Element]:
        """Every record (``m:evse`` elements, children in ``urn:gembus:evse:v1``), by evseId."""
        return Pull(
            lambda pull: _walk(
                self._endpoint,
                _FULL,
                pull,
                operator_ids=operator_ids,
                first_bounds=[],
                page_size=self.page_size,
                convert=_record,
                on_progress=on_progress,
            )
        )

    def delta_pull(
        self,
        since: datetime,
        operator_ids: Iterable[str] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Pull[EvseChange]:
        """The changes after ``since`` (the ``as_of`` of the previous successful pull)."""
        bounds = [("since", _xs_datetime(since))]
        return Pull(
            lambda pull: _walk(
                self._endpoint,
                _DELTA,
                pull,
                operator_ids=operator_ids,
                first_bounds=bounds,
                page_size=self.page_size,
                convert=_change,
                on_progress=on_progress,
            )
        )


class EvseStatusClient:
    """ProvideEVSEStatusData at one CLM endpoint (same timeout and paging rules)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        page_size: int = MAX_PAGE_SIZE,
        forwarder: Forwarder | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        self.page_size = page_size
        self._endpoint = _Endpoint(url, all_contracts()["evse_status"], timeout_s, forwarder)

    def status_pull(
        self,
        since: datetime | None = None,
        operator_ids: Iterable[str] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Pull[EvseStatus]:
        """Every EVSE's status, or only those changed after ``since``; ordered by evseId."""
        bounds = [("since", _xs_datetime(since))] if since is not None else []
        return Pull(
            lambda pull: _walk(
                self._endpoint,
                _STATUS,
                pull,
                operator_ids=operator_ids,
                first_bounds=bounds,
                page_size=self.page_size,
                convert=_status,
                on_progress=on_progress,
            )
        )

    def status_by_id(self, evse_ids: list[str]) -> list[EvseStatusLookup]:
        """The status of up to 100 EVSEs, in request order; unknown IDs have no status."""
        if not 1 <= len(evse_ids) <= MAX_STATUS_IDS:
            raise ValueError(f"GetEvseStatusById takes 1..{MAX_STATUS_IDS} EVSE IDs")
        request = etree.Element(f"{_S}GetEvseStatusById", nsmap={"m": STATUS_NS})
        for evse_id in evse_ids:
            etree.SubElement(request, f"{_S}evseId").text = evse_id
        response = self._endpoint.call("GetEvseStatusById", request)
        answers = [_lookup(e) for e in response.findall(f"{_S}evseStatus")]
        if [a.evse_id for a in answers] != list(evse_ids):
            raise ClmPullError(
                PullFailure.INCONSISTENT,
                "the answers do not echo the requested EVSE IDs in order",
                operation="GetEvseStatusById",
            )
        return answers
