"""Reading and writing the shared charging types of xsd/types/evse.xsd (urn:gembus:evse:v1).

Shared by the evse_upload, evse_status_push and evse_search families (and by the CLM pull,
which receives the same record type). Requests arrive validated against the XSD, so readers
only pick values out. A record's document is its children re-serialised once under a neutral
``ev:record`` element; a read moves them under the answering family's element.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, time

from lxml import etree

from domain.charging.master_data import Reason, RecordResult, Rejected
from domain.charging.model import (
    Address,
    EvseRecord,
    EvseStatus,
    Facility,
    Major,
    OpeningTimes,
    Period,
    ScheduledStatus,
)
from domain.identifiers import EvseId, InvalidIdentifier, OperatorId

EV = "urn:gembus:evse:v1"
CMN = "urn:gembus:common:v1"
NSMAP = {"ev": EV, "cmn": CMN}
#: Paths in the readers may use the charging families' prefixes too.
_PATHS = {
    **NSMAP,
    "u": "urn:gembus:evse-upload:v1",
    "p": "urn:gembus:evse-status-push:v1",
    "s": "urn:gembus:evse-search:v1",
}
_RECORD = f"{{{EV}}}record"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def text(parent: etree._Element, path: str) -> str | None:
    found = parent.find(path, _PATHS)
    return found.text.strip() if found is not None and found.text is not None else None


def texts(parent: etree._Element, path: str) -> frozenset[str]:
    return frozenset((e.text or "").strip() for e in parent.iterfind(path, _PATHS))


def when(value: str | None) -> datetime | None:
    """xs:dateTime to an aware datetime (no offset: UTC, as OCHP uses)."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _bool(value: str | None) -> bool:
    return value in ("true", "1")


_E = f"{{{EV}}}"
_C = f"{{{CMN}}}"
#: Whitespace between two tags: a pretty-printed record, whose document is rebuilt without it.
_BLANK_BETWEEN_TAGS = re.compile(r">\s+<")
_RECORD_START = f'<ev:record xmlns:ev="{EV}" xmlns:cmn="{CMN}">'


class _Fields:
    """An element's children by Clark tag, found in one pass.

    A record has some 25 children; one pass over them is several times cheaper than a path
    lookup per field, and a CLM's full pull reads 100,000 records. The XSD allows each field
    once, so the first child of a tag is the field.
    """

    __slots__ = ("_first",)

    def __init__(self, element: etree._Element | None) -> None:
        first: dict[object, etree._Element] = {}
        for child in element if element is not None else ():
            first.setdefault(child.tag, child)
        self._first = first

    def get(self, name: str, ns: str = _E) -> etree._Element | None:
        return self._first.get(ns + name)

    def text(self, name: str, ns: str = _E) -> str | None:
        found = self._first.get(ns + name)
        return found.text.strip() if found is not None and found.text is not None else None

    def items(self, wrapper: str, item: str) -> list[etree._Element]:
        """The ``item`` children of the list element ``wrapper`` (none when it is absent)."""
        found = self._first.get(_E + wrapper)
        tag = _E + item
        return [] if found is None else [c for c in found if c.tag == tag]

    def texts(self, wrapper: str, item: str) -> frozenset[str]:
        return frozenset((c.text or "").strip() for c in self.items(wrapper, item))


def read_record(element: etree._Element) -> EvseRecord | Rejected:
    """An EvseRecordType element as a domain record, or why it cannot be one."""
    fields = _Fields(element)
    wire = fields.text("evseId") or ""
    try:
        evse_id = EvseId.parse(wire)
        operator_id = OperatorId.parse(fields.text("operatorId") or "")
    except InvalidIdentifier as exc:
        return Rejected(wire, Reason.INVALID_IDENTIFIER, "evseId", str(exc))
    coordinates = _Fields(fields.get("coordinates"))  # required by the XSD
    return EvseRecord(
        evse_id=evse_id,
        operator_id=operator_id,
        address=_address(_Fields(fields.get("address"))),
        latitude=float(coordinates.text("latitude", _C) or 0),
        longitude=float(coordinates.text("longitude", _C) or 0),
        accessibility=fields.text("accessibility") or "",
        facilities=tuple(
            _facility(_Fields(f)) for f in fields.items("chargingFacilities", "chargingFacility")
        ),
        auth_modes=fields.texts("authModes", "authMode"),
        static_status=fields.text("staticStatus") or "Unknown",
        reservable=_bool(fields.text("reservable")),
        last_update=when(fields.text("lastUpdate")) or datetime.now(UTC),
        document=document(element),
        plugs=fields.texts("plugs", "plug"),
        connectors=frozenset(
            _Fields(c).text("connectorStandard") or ""
            for c in fields.items("connectors", "connector")
        ),
        charging_modes=fields.texts("chargingModes", "chargingMode"),
        payment_options=fields.texts("paymentOptions", "paymentOption"),
        value_added_services=fields.texts("valueAddedServices", "valueAddedService"),
        opening=_opening(fields.get("openingTimes")),
        schedule=tuple(
            _scheduled(_Fields(s)) for s in fields.items("statusSchedule", "scheduledStatus")
        ),
        renewable=_bool(fields.text("renewableEnergy")),
        dynamic_info=fields.text("dynamicInfoAvailable"),
    )


def _address(a: _Fields) -> Address:
    return Address(
        a.text("country", _C) or "",
        a.text("city", _C) or "",
        a.text("postalCode", _C),
        a.text("street", _C),
        a.text("houseNumber", _C),
        a.text("timeZone", _C),
    )


def _facility(f: _Fields) -> Facility:
    power = f.text("powerKw")
    return Facility(
        _bool(f.text("batteryExchange")),
        f.text("powerType"),
        float(power) if power is not None else None,
    )


def _hm(value: str) -> time:
    return time.max if value == "24:00" else time.fromisoformat(value)


def _periods(o: _Fields, wrapper: str) -> tuple[Period, ...]:
    periods = (_Fields(p) for p in o.items(wrapper, "period"))
    return tuple(
        Period(
            when(p.text("start", _C)) or datetime.min.replace(tzinfo=UTC), when(p.text("end", _C))
        )
        for p in periods
    )


def _opening(element: etree._Element | None) -> OpeningTimes | None:
    if element is None:
        return None
    o = _Fields(element)
    regular = tuple(
        (
            int(r.text("weekday") or 0),
            _hm(r.text("periodBegin") or "00:00"),
            _hm(r.text("periodEnd") or "24:00"),
        )
        for r in (_Fields(e) for e in o.items("regularHours", "regularHours"))
    )
    return OpeningTimes(
        _bool(o.text("twentyfourseven")),
        regular,
        _periods(o, "exceptionalOpenings"),
        _periods(o, "exceptionalClosings"),
    )


def _scheduled(s: _Fields) -> ScheduledStatus:
    start = when(s.text("start")) or datetime.min.replace(tzinfo=UTC)
    return ScheduledStatus(Period(start, when(s.text("end"))), s.text("staticStatus") or "Unknown")


def document(element: etree._Element) -> str:
    """The record's children under a neutral ev:record element, as stored text.

    The usual record (prefixes ``ev`` and ``cmn``, no other namespace in use, no
    indentation) is serialised once and given the ev:record tag, a third of the cost of
    rebuilding it (a CLM pull stores 100,000); any other is rebuilt child by child, which
    also normalises its prefixes and drops the indentation.
    """
    inner = _usual_content(element)
    if inner is None:
        return _rebuilt_document(element)
    return f"{_RECORD_START}{inner}</ev:record>"


def _usual_content(element: etree._Element) -> str | None:
    """The serialised children of a record that needs no rebuilding, else None."""
    scope = element.nsmap
    if scope.get("ev") != EV or scope.get("cmn") != CMN or None in scope or element.attrib:
        return None
    text = etree.tostring(element, encoding="unicode", with_tail=False)
    if text.endswith("/>"):
        return None
    inner = text[text.index(">") + 1 : text.rindex("</")]
    others = [prefix for prefix in scope if prefix not in ("ev", "cmn")]
    if _BLANK_BETWEEN_TAGS.search(inner) or any(f"{p}:" in inner for p in others):
        return None
    return inner


def _rebuilt_document(element: etree._Element) -> str:
    record = etree.Element(_RECORD, nsmap=NSMAP)
    for child in element:
        record.append(etree.fromstring(etree.tostring(child), _PARSER))
    etree.cleanup_namespaces(record, top_nsmap=NSMAP)  # no declarations the record never uses
    return etree.tostring(record, encoding="unicode")


def append_document(parent: etree._Element, tag: str, stored: str) -> etree._Element:
    """Put a stored record under ``parent`` as element ``tag`` (e.g. s:evse)."""
    record = etree.fromstring(stored, _PARSER)
    target = etree.SubElement(parent, tag)
    target.extend(list(record))
    return target


def read_status(element: etree._Element) -> EvseStatus:
    """The EvseStatusFields group (major, minor, ttl) of ``element``."""
    return EvseStatus(
        Major(text(element, "ev:major") or "unknown"),
        text(element, "ev:minor"),
        when(text(element, "ev:ttl")),
    )


def append_status(parent: etree._Element, tag: str, status: EvseStatus) -> etree._Element:
    target = etree.SubElement(parent, tag)
    etree.SubElement(target, f"{{{EV}}}major").text = status.major.value
    if status.minor is not None:
        etree.SubElement(target, f"{{{EV}}}minor").text = status.minor
    if status.ttl is not None:
        etree.SubElement(target, f"{{{EV}}}ttl").text = (
            status.ttl.astimezone(UTC).isoformat().replace("+00:00", "Z")
        )
    return target


def append_results(parent: etree._Element, ns: str, results: Iterable[RecordResult]) -> None:
    """summary + one recordResult per record, in request order (evse:RecordResultType)."""
    listed = list(results)
    summary = etree.SubElement(parent, f"{{{ns}}}summary")
    accepted = sum(r.accepted for r in listed)
    for name, value in (
        ("received", len(listed)),
        ("accepted", accepted),
        ("rejected", len(listed) - accepted),
    ):
        etree.SubElement(summary, f"{{{EV}}}{name}").text = str(value)
    for r in listed:
        element = etree.SubElement(parent, f"{{{ns}}}recordResult")
        etree.SubElement(element, f"{{{EV}}}evseId").text = r.evse_wire
        etree.SubElement(element, f"{{{EV}}}result").text = "accepted" if r.accepted else "rejected"
        if r.reason is not None:
            etree.SubElement(element, f"{{{EV}}}reason").text = r.reason.value
            if r.field:
                etree.SubElement(element, f"{{{EV}}}field").text = r.field
            if r.message:
                etree.SubElement(element, f"{{{EV}}}message").text = r.message[:2000]


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
