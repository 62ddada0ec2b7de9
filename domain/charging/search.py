"""Search EVSE: the five criteria groups, their rules, and the geometry behind proximity.

The proximity index is a grid: every EVSE carries ``cell``, the 0.1-degree square its
coordinates fall in (:func:`grid_cell`). A search turns centre + radius into the cells the
circle's bounding box covers (:func:`cells_for`), so the database reads a few index ranges
instead of a band of latitude across Europe, then checks the bounding box and finally the
exact great-circle distance. Plain B-tree indexes do this on PostgreSQL and SQLite alike
(PostGIS is not required).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from domain.charging.model import (
    ACCESSIBILITY,
    AUTH_MODES,
    CHARGING_MODES,
    CONNECTOR_STANDARDS,
    PAYMENT_OPTIONS,
    PLUGS,
    STATIC_STATUSES,
    VALUE_ADDED_SERVICES,
    EvseRecord,
    StoredEvse,
)
from domain.charging.opening import is_open
from gembus.errors import ClientError, InvalidPagingError

EARTH_RADIUS_KM = 6371.0088
#: The contract allows radiusKm up to 500; beyond that a "search" is a data export.
MAX_RADIUS_KM = 500.0
#: A page of full records; 200 x ~3 KB stays well under the 2 MiB message limit.
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 20
#: 0.1 degree: about 11 km north-south, 7 km east-west at 50 degrees north.
CELL_DEGREES = 0.1
_CELLS_PER_ROW = 3600
#: Above this many cells the bounding box on the latitude index is the cheaper plan.
MAX_CELLS = 400
#: Absent staticStatuses: what a driver can use now or soon (evse_search.xsd).
DEFAULT_STATIC_STATUSES = frozenset({"Operative", "Inoperative", "Planned"})


class InvalidCriteriaError(ClientError):
    fault_code = "Client.InvalidCriteria"
    default_message = "the search criteria cannot match anything"


@dataclass(frozen=True)
class Technical:
    plugs: frozenset[str] = frozenset()
    connectors: frozenset[str] = frozenset()
    current: str | None = None  # AC | DC
    min_power_kw: float | None = None
    charging_modes: frozenset[str] = frozenset()
    battery_exchange: bool | None = None
    value_added_services: frozenset[str] = frozenset()
    reservable: bool | None = None


@dataclass(frozen=True)
class Operators:
    operator_keys: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Management:
    auth_modes: frozenset[str] = frozenset()
    payment_options: frozenset[str] = frozenset()
    accessibility: frozenset[str] = frozenset()
    open_now: bool = False
    open_24_7: bool = False
    available_now: bool = False
    static_statuses: frozenset[str] = DEFAULT_STATIC_STATUSES
    renewable: bool | None = None
    dynamic_info: bool | None = None


@dataclass(frozen=True)
class AddressCriteria:
    country: str | None = None
    city: str | None = None
    postal_code: str | None = None
    street: str | None = None
    house_number: str | None = None

    @property
    def empty(self) -> bool:
        return not any((self.country, self.city, self.postal_code, self.street, self.house_number))


@dataclass(frozen=True)
class Proximity:
    latitude: float
    longitude: float
    radius_km: float


@dataclass(frozen=True)
class SearchQuery:
    technical: Technical = field(default_factory=Technical)
    operators: Operators = field(default_factory=Operators)
    management: Management = field(default_factory=Management)
    address: AddressCriteria | None = None
    proximity: Proximity | None = None
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class Match:
    evse: StoredEvse
    distance_km: float | None


def check_query(query: SearchQuery) -> SearchQuery:
    """Refuse criteria that cannot be meant, naming the field (Client.InvalidCriteria/Paging)."""
    if query.page < 1:
        raise InvalidPagingError("page numbers start at 1", field="paging/page")
    if not 1 <= query.page_size <= MAX_PAGE_SIZE:
        raise InvalidPagingError(
            f"pageSize must be 1..{MAX_PAGE_SIZE} for SearchEvse", field="paging/pageSize"
        )
    if query.address is not None and query.address.empty:
        raise InvalidCriteriaError("the address group needs at least one field", field="address")
    if query.proximity is not None:
        _check_proximity(query.proximity)
    _check_values(query)
    if query.technical.min_power_kw is not None and query.technical.min_power_kw <= 0:
        raise InvalidCriteriaError("minPowerKw must be positive", field="technical/minPowerKw")
    return query


def _check_values(query: SearchQuery) -> None:
    """Unknown enumeration values (the schema refuses them too, unless validation is off)."""
    t, m = query.technical, query.management
    lists = (
        (t.plugs, PLUGS, "technical/plugs/plug"),
        (t.connectors, CONNECTOR_STANDARDS, "technical/connectorStandards/connectorStandard"),
        (t.charging_modes, CHARGING_MODES, "technical/chargingModes/chargingMode"),
        (t.value_added_services, VALUE_ADDED_SERVICES, "technical/valueAddedServices"),
        (frozenset({t.current} - {None}), ("AC", "DC"), "technical/currentType"),
        (m.auth_modes, AUTH_MODES, "management/authModes/authMode"),
        (m.payment_options, PAYMENT_OPTIONS, "management/paymentOptions/paymentOption"),
        (m.accessibility, ACCESSIBILITY, "management/accessibility/accessibility"),
        (m.static_statuses, STATIC_STATUSES, "management/staticStatuses/staticStatus"),
    )
    for values, universe, path in lists:
        unknown = sorted(str(v) for v in values if v not in universe)
        if unknown:
            raise InvalidCriteriaError(f"unknown value {unknown[0]!r}", field=path)


def _check_proximity(p: Proximity) -> None:
    if not -90.0 <= p.latitude <= 90.0:
        raise InvalidCriteriaError("latitude must be -90..90", field="proximity/center/latitude")
    if not -180.0 <= p.longitude <= 180.0:
        raise InvalidCriteriaError(
            "longitude must be -180..180", field="proximity/center/longitude"
        )
    if not 0.0 < p.radius_km <= MAX_RADIUS_KM:
        raise InvalidCriteriaError(
            f"radiusKm must be greater than 0 and at most {MAX_RADIUS_KM:g}",
            field="proximity/radiusKm",
        )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance on the mean Earth sphere (error < 0.5 %, fine for a search)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class BoundingBox:
    south: float
    north: float
    west: float
    east: float

    @property
    def wraps(self) -> bool:
        """True when the box crosses the antimeridian (west > east)."""
        return self.west > self.east


def bounding_box(p: Proximity) -> BoundingBox:
    """The lat/lon box that contains the circle (every point in the circle is in the box)."""
    dlat = math.degrees(p.radius_km / EARTH_RADIUS_KM)
    south, north = max(-90.0, p.latitude - dlat), min(90.0, p.latitude + dlat)
    widest = max(abs(south), abs(north))
    if widest >= 89.9:
        return BoundingBox(south, north, -180.0, 180.0)
    dlon = math.degrees(p.radius_km / (EARTH_RADIUS_KM * math.cos(math.radians(widest))))
    if dlon >= 180.0:
        return BoundingBox(south, north, -180.0, 180.0)
    west, east = p.longitude - dlon, p.longitude + dlon
    return BoundingBox(south, north, _wrap(west), _wrap(east))


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0 if not -180.0 <= lon <= 180.0 else lon


def grid_cell(latitude: float, longitude: float) -> int:
    """The index cell of a coordinate: row (latitude) * 3600 + column (longitude)."""
    row = min(math.floor((latitude + 90.0) / CELL_DEGREES), 1799)
    column = min(math.floor((longitude + 180.0) / CELL_DEGREES), _CELLS_PER_ROW - 1)
    return row * _CELLS_PER_ROW + column


def cells_for(box: BoundingBox) -> list[int] | None:
    """Every cell the box touches, or None when there are too many to list (use the box)."""
    first, last = grid_cell(box.south, box.west), grid_cell(box.north, box.east)
    rows = range(first // _CELLS_PER_ROW, last // _CELLS_PER_ROW + 1)
    west, east = first % _CELLS_PER_ROW, last % _CELLS_PER_ROW
    columns = (
        list(range(west, _CELLS_PER_ROW)) + list(range(0, east + 1))
        if box.wraps
        else list(range(west, east + 1))
    )
    if len(rows) * len(columns) > MAX_CELLS:
        return None
    return [r * _CELLS_PER_ROW + c for r in rows for c in columns]


def matches(record: EvseRecord, query: SearchQuery, now: datetime) -> bool:
    """The rules in plain Python, one record at a time; the repository applies the same rules
    in SQL. Used for what SQL cannot express (opening hours) and as the reference in tests."""
    return (
        _technical(record, query.technical)
        and _operators(record, query.operators)
        and _management_static(record, query.management)
        and (not query.management.open_now or is_open(record, now))
        and (query.address is None or address_matches(record, query.address))
        and (query.proximity is None or distance_to(record, query.proximity) is not None)
    )


def distance_to(record: EvseRecord, p: Proximity) -> float | None:
    """The distance when the record lies within the radius, else None."""
    distance = haversine_km(p.latitude, p.longitude, record.latitude, record.longitude)
    return distance if distance <= p.radius_km else None


def _any(wanted: frozenset[str], offered: frozenset[str]) -> bool:
    return not wanted or bool(wanted & offered)


def _technical(r: EvseRecord, t: Technical) -> bool:
    power = r.max_power(t.current)
    return (
        _any(t.plugs, r.plugs)
        and _any(t.connectors, r.connectors)
        and _any(t.charging_modes, r.charging_modes)
        and _any(t.value_added_services, r.value_added_services)
        and (t.current is None or r.has_current(t.current))
        and (t.min_power_kw is None or (power is not None and power >= t.min_power_kw))
        and (t.battery_exchange is None or r.battery_swap == t.battery_exchange)
        and (t.reservable is None or r.reservable == t.reservable)
    )


def _operators(r: EvseRecord, o: Operators) -> bool:
    return (not o.operator_keys or r.operator_id.key in o.operator_keys) and (
        not o.countries or r.address.country in o.countries
    )


def _management_static(r: EvseRecord, m: Management) -> bool:
    dynamic = r.dynamic_info in ("true", "auto")
    return (
        _any(m.auth_modes, r.auth_modes)
        and _any(m.payment_options, r.payment_options)
        and (not m.accessibility or r.accessibility in m.accessibility)
        and (not m.open_24_7 or (r.opening is not None and r.opening.twentyfourseven))
        and r.static_status in m.static_statuses
        and (m.renewable is None or r.renewable == m.renewable)
        and (m.dynamic_info is None or dynamic == m.dynamic_info)
    )


def address_matches(r: EvseRecord, a: AddressCriteria) -> bool:
    """Country and postal code exactly, city case-insensitively, street as a prefix."""
    street = (r.address.street or "").casefold()
    return (
        (a.country is None or r.address.country == a.country)
        and (a.city is None or r.address.city.casefold() == a.city.casefold())
        and (a.postal_code is None or r.address.postal_code == a.postal_code)
        and (a.street is None or street.startswith(a.street.casefold()))
        and (a.house_number is None or r.address.house_number == a.house_number)
    )
