"""Decode and encode the sdr family's messages (xsd/sdr.xsd) on the lxml path.

SubmitSdrs is the clearing house's bulk path (up to 1000 records a message), so a record is
read in one walk of its own subtree -- its fields, the blank elements and the content hash --
from the tree the guard already parsed and the pipeline validated; nothing is bound through
spyne. Responses are written as text and parsed once: it is the cheapest way to embed the
stored ``rm:sdr`` documents, which are text already.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from lxml import etree

from domain.clearing.sdr import ChargingPeriod, SdrEntry, SdrSubmission, SubmitResult
from domain.clearing.sdr_forwarding import ConfirmLine, SubmitLine
from domain.clearing.sdr_wire import COMMON_NS, ROAMING_NS, entry_xml
from domain.marketplace.partners import Page
from gembus.errors import SchemaValidationError

SDR_NS = "urn:gembus:sdr:v1"
S = f"{{{SDR_NS}}}"
RM = f"{{{ROAMING_NS}}}"
CMN = f"{{{COMMON_NS}}}"
_DECLARE = f'xmlns:s="{SDR_NS}" xmlns:rm="{ROAMING_NS}" xmlns:cmn="{COMMON_NS}"'
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
_REFUSED = frozenset({SubmitResult.IMPLAUSIBLE, SubmitResult.CONFLICT})


# ------------------------------------------------------------------------------ decode


def text(parent: etree._Element, tag: str) -> str | None:
    value = parent.findtext(tag)
    return value.strip() if value is not None else None


def parse_time(value: str, field: str) -> datetime:
    """xs:dateTime; a value without an offset is read as UTC (the contracts require one)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise SchemaValidationError(f"{value!r} is not an xs:dateTime", field=field) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def decode_sdr(element: etree._Element, index: int) -> SdrSubmission:
    """One ``sdr`` of a SubmitSdrs batch: fields, content hash and the stored document.

    The schema guarantees the shape; with request validation switched off, a record that
    lacks a required element is refused as a whole instead of failing deeper down.
    """
    try:
        return _decode(element, index)
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise SchemaValidationError(
            f"record {index} does not follow rm:SdrType: {exc}", field=f"sdrs/sdr[{index}]"
        ) from exc


def _decode(element: etree._Element, index: int) -> SdrSubmission:
    reading = _Reading(element)
    values, where = reading.values, f"sdrs/sdr[{index}]"
    start_text, end_text = values[f"{RM}startDateTime"], values[f"{RM}endDateTime"]
    total = values.get(f"{RM}totalCost")
    assert reading.status is not None, "rm:status is required"
    return SdrSubmission(
        sdr_id=values[f"{RM}sdrId"],
        service_type=values.get(f"{RM}serviceType") or None,
        evse_id=values[f"{RM}evseId"],
        contract_id=values[f"{RM}contractId"],
        status=values[f"{RM}status"],
        start=parse_time(start_text, f"{where}/startDateTime"),
        end=parse_time(end_text, f"{where}/endDateTime"),
        duration=values.get(f"{RM}duration") or None,
        periods=tuple(
            _period(v, f"{where}/chargingPeriods/chargingPeriod[{n}]")
            for n, v in enumerate(reading.periods, 1)
        ),
        total_cost=Decimal(total) if total else None,
        currency=values[f"{RM}currency"],
        document=_document(element, reading.status),
        content_hash=hashlib.sha256("\x1f".join(reading.parts).encode()).hexdigest(),
        blank_fields=tuple(reading.blank),
        start_text=start_text,
        end_text=end_text,
    )


_STATUS, _PERIODS = f"{RM}status", f"{RM}chargingPeriods"


class _Reading:
    """One walk over a record (rm:SdrType is two levels deep below the record at most):

    * ``values`` -- the record's own leaf values by Clark name, ``periods`` -- each period's;
    * ``parts`` -- its content for the hash: element names in Clark notation and trimmed leaf
      values, so neither namespace prefixes nor indentation make a retry look changed;
    * ``blank`` -- the paths of leaf elements sent blank (rule EMPTY_ELEMENT).

    lxml builds a new string for every ``tag`` and ``text`` it is asked for, so each node is
    asked once: this walk is most of what ingest costs in Python.
    """

    def __init__(self, record: etree._Element) -> None:
        self.record = record
        self.values: dict[str, str] = {}
        self.periods: list[dict[str, str]] = []
        self.status: etree._Element | None = None
        self.parts: list[str] = []
        self.blank: list[str] = []
        for child in record:
            tag = child.tag
            if not len(child):
                self.values[tag] = self.leaf(child, tag)
                if tag == _STATUS:
                    self.status = child
                continue
            self.parts.append(tag)
            if tag == _PERIODS:
                for period in child:
                    self.parts.append(period.tag)
                    self.periods.append({leaf.tag: self.leaf(leaf, leaf.tag) for leaf in period})
            else:
                for leaf in child:
                    self.leaf(leaf, leaf.tag)

    def leaf(self, node: etree._Element, tag: str) -> str:
        value = (node.text or "").strip()
        self.parts.append(tag + "\x1e" + value)
        if not value:
            self.blank.append(_path(node, self.record))
        return value


def _path(node: etree._Element, root: etree._Element) -> str:
    """``chargingPeriods/chargingPeriod[2]/periodCost``: the node's path inside the record."""
    names: list[str] = []
    while node is not root:
        parent = node.getparent()
        assert parent is not None
        name = etree.QName(node).localname
        same = parent.findall(node.tag)
        names.append(f"{name}[{same.index(node) + 1}]" if len(same) > 1 else name)
        node = parent
    return "/".join(reversed(names))[:255]


def _period(v: dict[str, str], path: str) -> ChargingPeriod:
    cost = v.get(f"{RM}periodCost")
    return ChargingPeriod(
        parse_time(v[f"{RM}startDateTime"], f"{path}/startDateTime"),
        parse_time(v[f"{RM}endDateTime"], f"{path}/endDateTime"),
        v[f"{RM}billingItem"],
        Decimal(v[f"{RM}billingValue"]),
        Decimal(v[f"{RM}itemPrice"]),
        Decimal(cost) if cost else None,
        v[f"{RM}startDateTime"],
        v[f"{RM}endDateTime"],
    )


def _document(element: etree._Element, status: etree._Element) -> str:
    """The record as ``rm:sdr`` with an empty status element (filled in when read back)."""
    status.text = None
    element.tag = f"{RM}sdr"
    return etree.tostring(element, encoding="unicode")


def page_of(request: etree._Element) -> Page:
    paging = request.find(f"{S}paging")
    if paging is None:
        return Page()
    number, size = text(paging, f"{CMN}page"), text(paging, f"{CMN}pageSize")
    default = Page()
    return Page(int(number) if number else default.number, int(size) if size else default.size)


# ------------------------------------------------------------------------------ encode


def parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), _PARSER)


def submit_response(lines: Sequence[SubmitLine]) -> etree._Element:
    refused = sum(1 for line in lines if line.outcome.result in _REFUSED)
    head = (
        f"<s:SubmitSdrsResponse {_DECLARE}><s:summary><s:received>{len(lines)}</s:received>"
        f"<s:accepted>{len(lines) - refused}</s:accepted><s:refused>{refused}</s:refused>"
        "</s:summary>"
    )
    return parse(head + "".join(_result(line) for line in lines) + "</s:SubmitSdrsResponse>")


def _result(line: SubmitLine) -> str:
    outcome = line.outcome
    parts = [
        f"<s:sdrResult><s:sdrId>{escape(line.sdr_id)}</s:sdrId><s:result>{outcome.result.value}</s:result>"
    ]
    if outcome.status is not None:
        parts.append(f"<s:sdrStatus>{outcome.status.value}</s:sdrStatus>")
    if outcome.version is not None:
        parts.append(f"<s:version>{outcome.version}</s:version>")
    for issue in line.issues:
        field = f"<s:field>{escape(issue.field[:255])}</s:field>" if issue.field else ""
        parts.append(
            f"<s:issue><s:rule>{issue.rule.value}</s:rule>{field}"
            f"<s:message>{escape(issue.message[:2000])}</s:message></s:issue>"
        )
    if outcome.reason:
        parts.append(f"<s:reason>{escape(outcome.reason[:2000])}</s:reason>")
    parts.append("</s:sdrResult>")
    return "".join(parts)


def entries_response(
    name: str, entries: Sequence[SdrEntry], page: Page, total: int
) -> etree._Element:
    """CheckSdrsResponse / GetPendingSdrsResponse: the entries and the page info."""
    body = "".join(entry_xml(e, "s:sdrEntry") for e in entries)
    info = (
        f"<s:pageInfo><cmn:page>{page.number}</cmn:page><cmn:pageSize>{page.size}</cmn:pageSize>"
        f"<cmn:totalCount>{total}</cmn:totalCount></s:pageInfo>"
    )
    return parse(f"<s:{name} {_DECLARE}>{body}{info}</s:{name}>")


def confirm_response(lines: Sequence[ConfirmLine]) -> etree._Element:
    parts = [f"<s:ConfirmSdrsResponse {_DECLARE}>"]
    for line in lines:
        parts.append(
            f"<s:confirmResult><s:sdrId>{escape(line.sdr_id)}</s:sdrId><s:result>{line.result.value}</s:result>"
        )
        if line.status is not None:
            parts.append(f"<s:sdrStatus>{line.status.value}</s:sdrStatus>")
        if line.reason:
            parts.append(f"<s:reason>{escape(line.reason[:2000])}</s:reason>")
        parts.append("</s:confirmResult>")
    parts.append("</s:ConfirmSdrsResponse>")
    return parse("".join(parts))
