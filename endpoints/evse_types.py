"""Reading and writing the shared charging types of xsd/types/evse.xsd (urn:gembus:evse:v1).

Shared by the evse_upload, evse_status_push and evse_search families (and by the CLM pull,
which receives the same record type). Requests arrive validated against the XSD, so readers
only pick values out. A record's document is its children re-serialised once under a neutral
``ev:record`` element; a read moves them under the answering family's element.
"""

from __future__ import annotations

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


def read_record(element: etree._Element) -> EvseRecord | Rejected:
    """An EvseRecordType element as a domain record, or why it cannot be one."""
    wire = text(element, "ev:evseId") or ""
    try:
        evse_id = EvseId.parse(wire)
        operator_id = OperatorId.parse(text(element, "ev:operatorId") or "")
    except InvalidIdentifier as exc:
        return Rejected(wire, Reason.INVALID_IDENTIFIER, "evseId", str(exc))
    coordinates = element.find("ev:coordinates", NSMAP)
    assert coordinates is not None  # required by the XSD
    return EvseRecord(
        evse_id=evse_id,
        operator_id=operator_id,
        address=_address(element),
        latitude=float(text(coordinates, "cmn:latitude") or 0),
        longitude=float(text(coordinates, "cmn:longitude") or 0),
        accessibility=text(element, "ev:accessibility") or "",
        facilities=tuple(
            _facility(f)
            for f in element.iterfind("ev:chargingFacilities/ev:chargingFacility", NSMAP)
        ),
        auth_modes=texts(element, "ev:authModes/ev:authMode"),
        static_status=text(element, "ev:staticStatus") or "Unknown",
        reservable=_bool(text(element, "ev:reservable")),
        last_update=when(text(element, "ev:lastUpdate")) or datetime.now(UTC),
        document=document(element),
        plugs=texts(element, "ev:plugs/ev:plug"),
        connectors=texts(element, "ev:connectors/ev:connector/ev:connectorStandard"),
        charging_modes=texts(element, "ev:chargingModes/ev:chargingMode"),
        payment_options=texts(element, "ev:paymentOptions/ev:paymentOption"),
        value_added_services=texts(element, "ev:valueAddedServices/ev:valueAddedService"),
        opening=_opening(element.find("ev:openingTimes", NSMAP)),
        schedule=tuple(
            _scheduled(s) for s in element.iterfind("ev:statusSchedule/ev:scheduledStatus", NSMAP)
        ),
        renewable=_bool(text(element, "ev:renewableEnergy")),
        dynamic_info=text(element, "ev:dynamicInfoAvailable"),
    )


def _address(element: etree._Element) -> Address:
    a = element.find("ev:address", NSMAP)
    assert a is not None  # required by the XSD
    return Address(
        text(a, "cmn:country") or "",
        text(a, "cmn:city") or "",
        text(a, "cmn:postalCode"),
        text(a, "cmn:street"),
        text(a, "cmn:houseNumber"),
        text(a, "cmn:timeZone"),
    )


def _facility(f: etree._Element) -> Facility:
    power = text(f, "ev:powerKw")
    return Facility(
        _bool(text(f, "ev:batteryExchange")),
        text(f, "ev:powerType"),
        float(power) if power is not None else None,
    )


def _hm(value: str) -> time:
    return time.max if value == "24:00" else time.fromisoformat(value)


def _periods(parent: etree._Element, path: str) -> tuple[Period, ...]:
    return tuple(
        Period(
            when(text(p, "cmn:start")) or datetime.min.replace(tzinfo=UTC), when(text(p, "cmn:end"))
        )
        for p in parent.iterfind(path, NSMAP)
    )


def _opening(o: etree._Element | None) -> OpeningTimes | None:
    if o is None:
        return None
    regular = tuple(
        (
            int(text(r, "ev:weekday") or 0),
            _hm(text(r, "ev:periodBegin") or "00:00"),
            _hm(text(r, "ev:periodEnd") or "24:00"),
        )
        for r in o.iterfind("ev:regularHours/ev:regularHours", NSMAP)
    )
    return OpeningTimes(
        _bool(text(o, "ev:twentyfourseven")),
        regular,
        _periods(o, "ev:exceptionalOpenings/ev:period"),
        _periods(o, "ev:exceptionalClosings/ev:period"),
    )


def _scheduled(s: etree._Element) -> ScheduledStatus:
    start = when(text(s, "ev:start")) or datetime.min.replace(tzinfo=UTC)
    return ScheduledStatus(
        Period(start, when(text(s, "ev:end"))), text(s, "ev:staticStatus") or "Unknown"
    )


def document(element: etree._Element) -> str:
    """The record's children under a neutral ev:record element, as stored text."""
    record = etree.Element(_RECORD, nsmap=NSMAP)
    for child in element:
        record.append(etree.fromstring(etree.tostring(child), _PARSER))
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
