"""Search EVSE over SOAP (lxml path): SearchEvse, GetEvse, GetEvseStatusById.

Criteria are read into domain/charging/search.py's SearchQuery and checked there; the
repository answers with stored documents, which are moved under the response elements as they
are (no object binding). Live status is evaluated here, at read time: an expired ttl reads as
unknown. Any authenticated partner may search.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lxml import etree

from domain.charging.model import UNKNOWN
from domain.charging.search import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_STATIC_STATUSES,
    AddressCriteria,
    Management,
    Match,
    Operators,
    Proximity,
    SearchQuery,
    Technical,
    check_query,
)
from domain.identifiers import EvseId, OperatorId
from domain.marketplace.partners import parse_identifier
from endpoints.evse_types import CMN, EV, append_document, append_status, text, texts
from gembus.context import RequestContext

NS = "urn:gembus:evse-search:v1"
_NSMAP = {"s": NS, "ev": EV, "cmn": CMN}


def _flag(parent: etree._Element, path: str) -> bool | None:
    value = text(parent, path)
    return None if value is None else value in ("true", "1")


def _number(parent: etree._Element, path: str) -> float | None:
    value = text(parent, path)
    return float(value) if value is not None else None


def _t(parent: etree._Element, path: str) -> frozenset[str]:
    return texts(parent, path)


def read_query(request: etree._Element) -> SearchQuery:
    """The SearchEvse element as a SearchQuery (absent groups do not filter)."""
    empty = etree.Element("none")
    t = request.find("s:technical", _NSMAP)
    o = request.find("s:operator", _NSMAP)
    m = request.find("s:management", _NSMAP)
    a = request.find("s:address", _NSMAP)
    p = request.find("s:proximity", _NSMAP)
    return SearchQuery(
        technical=_technical(t if t is not None else empty),
        operators=_operators(o if o is not None else empty),
        management=_management(m if m is not None else empty),
        address=_address(a) if a is not None else None,
        proximity=_proximity(p) if p is not None else None,
        page=int(text(request, "s:paging/cmn:page") or 1),
        page_size=int(text(request, "s:paging/cmn:pageSize") or DEFAULT_PAGE_SIZE),
    )


def _technical(t: etree._Element) -> Technical:
    return Technical(
        plugs=_t(t, "s:plugs/s:plug"),
        connectors=_t(t, "s:connectorStandards/s:connectorStandard"),
        current=text(t, "s:currentType"),
        min_power_kw=_number(t, "s:minPowerKw"),
        charging_modes=_t(t, "s:chargingModes/ev:chargingMode"),
        battery_exchange=_flag(t, "s:batteryExchange"),
        value_added_services=_t(t, "s:valueAddedServices/ev:valueAddedService"),
        reservable=_flag(t, "s:reservable"),
    )


def _operators(o: etree._Element) -> Operators:
    keys = frozenset(
        parse_identifier(
            OperatorId.parse, e.text or "", f"operator/operatorIds/operatorId[{i}]"
        ).key
        for i, e in enumerate(o.iterfind("s:operatorIds/ev:operatorId", _NSMAP), 1)
    )
    return Operators(keys, _t(o, "s:countries/s:country"))


def _management(m: etree._Element) -> Management:
    statuses = _t(m, "s:staticStatuses/ev:staticStatus")
    return Management(
        auth_modes=_t(m, "s:authModes/ev:authMode"),
        payment_options=_t(m, "s:paymentOptions/ev:paymentOption"),
        accessibility=_t(m, "s:accessibility/ev:accessibility"),
        open_now=bool(_flag(m, "s:openNow")),
        open_24_7=bool(_flag(m, "s:openTwentyFourSeven")),
        available_now=bool(_flag(m, "s:availableNow")),
        static_statuses=statuses or DEFAULT_STATIC_STATUSES,
        renewable=_flag(m, "s:renewableEnergy"),
        dynamic_info=_flag(m, "s:dynamicInfoAvailable"),
    )


def _address(a: etree._Element) -> AddressCriteria:
    return AddressCriteria(
        text(a, "s:country"),
        text(a, "s:city"),
        text(a, "s:postalCode"),
        text(a, "s:street"),
        text(a, "s:houseNumber"),
    )


def _proximity(p: etree._Element) -> Proximity:
    return Proximity(
        _number(p, "s:center/cmn:latitude") or 0.0,
        _number(p, "s:center/cmn:longitude") or 0.0,
        _number(p, "s:radiusKm") or 0.0,
    )


def search(request: etree._Element, ctx: RequestContext) -> etree._Element:
    query = check_query(read_query(request))
    _ = ctx.actor  # any authenticated partner
    now = ctx.now()
    fast = ctx.services.near_search if ctx.services is not None else None
    found = fast(query) if fast is not None else None
    if found is None:
        with ctx.read() as uow:
            found = uow.evses.search(query, now)
    matches, total = found
    root = etree.Element(f"{{{NS}}}SearchEvseResponse", nsmap=_NSMAP)
    for match in matches:
        _match(root, match, now)
    info = etree.SubElement(root, f"{{{NS}}}pageInfo")
    etree.SubElement(info, f"{{{CMN}}}page").text = str(query.page)
    etree.SubElement(info, f"{{{CMN}}}pageSize").text = str(query.page_size)
    etree.SubElement(info, f"{{{CMN}}}totalCount").text = str(total)
    return root


def _match(parent: etree._Element, match: Match, now: datetime) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}evseMatch")
    if match.distance_km is not None:
        etree.SubElement(element, f"{{{NS}}}distanceKm").text = f"{match.distance_km:.3f}"
    append_document(element, f"{{{NS}}}evse", match.evse.document)
    append_status(element, f"{{{NS}}}status", match.evse.status.effective(now))


def _requested(request: etree._Element) -> list[tuple[str, str]]:
    """(wire, key) of each requested EVSE ID, in request order."""
    return [
        (e.text or "", parse_identifier(EvseId.parse, e.text or "", f"evseId[{i}]").key)
        for i, e in enumerate(request.iterfind("s:evseId", _NSMAP), 1)
    ]


def get_evse(request: etree._Element, ctx: RequestContext) -> etree._Element:
    requested = _requested(request)
    _ = ctx.actor
    now = ctx.now()
    with ctx.read() as uow:
        found = uow.evses.get([k for _, k in requested])
    root = etree.Element(f"{{{NS}}}GetEvseResponse", nsmap=_NSMAP)
    for wire, key in requested:
        element = etree.SubElement(root, f"{{{NS}}}evseResult")
        etree.SubElement(element, f"{{{NS}}}evseId").text = wire
        stored = found.get(key)
        etree.SubElement(element, f"{{{NS}}}result").text = "found" if stored else "notFound"
        if stored is not None:
            append_document(element, f"{{{NS}}}evse", stored.document)
            append_status(element, f"{{{NS}}}status", stored.status.effective(now))
    return root


def get_status(request: etree._Element, ctx: RequestContext) -> etree._Element:
    requested = _requested(request)
    _ = ctx.actor
    now = ctx.now()
    with ctx.read() as uow:
        found = uow.evses.statuses([k for _, k in requested])
    root = etree.Element(f"{{{NS}}}GetEvseStatusByIdResponse", nsmap=_NSMAP)
    for wire, key in requested:
        element = etree.SubElement(root, f"{{{NS}}}evseStatus")
        etree.SubElement(element, f"{{{EV}}}evseId").text = wire
        known = key in found
        etree.SubElement(element, f"{{{EV}}}result").text = "found" if known else "notFound"
        if known:
            status = found[key] or UNKNOWN
            append_status(element, f"{{{EV}}}status", status.effective(now))
    return root


HANDLERS: dict[str, Callable[[etree._Element, RequestContext], etree._Element]] = {
    "SearchEvse": search,
    "GetEvse": get_evse,
    "GetEvseStatusById": get_status,
}
