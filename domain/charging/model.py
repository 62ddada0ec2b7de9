"""EVSE master data and live status as plain values (DOMAIN.md §9.1, §9.2).

A record keeps two things: the fields Search EVSE filters on (so the repository can index
them) and ``document``, the record exactly as the operator sent it in canonical XML, which is
what every read answers. The projection is derived from the document once, at write time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time

from domain.identifiers import EvseId, OperatorId

# The enumerations of xsd/types/evse.xsd, in contract order. The order is part of the storage
# format: the repository keeps each list as a bit mask with bit i = the i-th value here.
PLUGS = (
    "Small Paddle Inductive",
    "Large Paddle Inductive",
    "AVCONConnector",
    "TeslaConnector",
    "NEMA 5-20",
    "Type E French Standard",
    "Type F Schuko",
    "Type G British Standard",
    "Type J Swiss Standard",
    "Type 1 Connector (Cable Attached)",
    "Type 2 Outlet",
    "Type 2 Connector (Cable Attached)",
    "Type 3 Outlet",
    "IEC 60309 Single Phase",
    "IEC 60309 Three Phase",
    "CCS Combo 2 Plug (Cable Attached)",
    "CCS Combo 1 Plug (Cable Attached)",
    "CHAdeMO",
)
CONNECTOR_STANDARDS = (
    "Chademo",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKL"),
    "TESLA_R",
    "TESLA_S",
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
)
CHARGING_MODES = ("Mode_1", "Mode_2", "Mode_3", "Mode_4", "CHAdeMO")
AUTH_MODES = (
    "Public",
    "LocalKey",
    "DirectCash",
    "DirectCreditcard",
    "DirectDebitcard",
    "RfidMifareCls",
    "RfidMifareDes",
    "RfidCalypso",
    "Iec15118",
    "OchpDirectAuth",
    "OperatorAuth",
    "Remote",
)
PAYMENT_OPTIONS = ("Free", "Direct", "SMS", "Cash", "CreditCard", "Contract", "NoPayment")
ACCESSIBILITY = (
    "Free publicly accessible",
    "Restricted access",
    "Paying publicly accessible",
    "Test Station",
)
VALUE_ADDED_SERVICES = (
    "Reservation",
    "DynamicPricing",
    "ParkingSensors",
    "MaximumPowerCharging",
    "PredictiveChargePointUsage",
    "ChargingPlans",
)
STATIC_STATUSES = ("Unknown", "Operative", "Inoperative", "Planned", "Closed")


def mask(values: frozenset[str] | tuple[str, ...], universe: tuple[str, ...]) -> int:
    """The bit mask of ``values`` over ``universe`` (bit i = universe[i])."""
    return sum(1 << universe.index(v) for v in set(values))


@dataclass(frozen=True)
class Facility:
    """One charging facility or battery-exchange bay (evse:ChargingFacilityType)."""

    battery_exchange: bool
    power_type: str | None = None  # AC_1_PHASE | AC_3_PHASE | DC
    power_kw: float | None = None

    @property
    def current(self) -> str | None:
        """AC or DC, the search criterion's view of powerType."""
        if self.power_type is None:
            return None
        return "DC" if self.power_type == "DC" else "AC"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class OpeningTimes:
    """OCHP HoursType: regular hours or 24/7, exceptional openings and closings."""

    twentyfourseven: bool
    #: (ISO weekday, begin, end); an end of 24:00 is time.max.
    regular: tuple[tuple[int, time, time], ...] = ()
    exceptional_openings: tuple[Period, ...] = ()
    exceptional_closings: tuple[Period, ...] = ()


@dataclass(frozen=True)
class ScheduledStatus:
    period: Period
    static_status: str


@dataclass(frozen=True)
class Address:
    country: str
    city: str
    postal_code: str | None = None
    street: str | None = None
    house_number: str | None = None
    time_zone: str | None = None


@dataclass(frozen=True)
class EvseRecord:
    """One charging point or battery-swap station: the searchable projection + the document."""

    evse_id: EvseId
    operator_id: OperatorId
    address: Address
    latitude: float
    longitude: float
    accessibility: str
    facilities: tuple[Facility, ...]
    auth_modes: frozenset[str]
    static_status: str
    reservable: bool
    last_update: datetime
    document: str
    plugs: frozenset[str] = frozenset()
    connectors: frozenset[str] = frozenset()
    charging_modes: frozenset[str] = frozenset()
    payment_options: frozenset[str] = frozenset()
    value_added_services: frozenset[str] = frozenset()
    opening: OpeningTimes | None = None
    schedule: tuple[ScheduledStatus, ...] = ()
    renewable: bool = False
    dynamic_info: str | None = None  # true | false | auto

    @property
    def battery_swap(self) -> bool:
        return any(f.battery_exchange for f in self.facilities)

    def max_power(self, current: str | None = None) -> float | None:
        """Highest powerKw over the facilities of ``current`` (AC/DC), or of all."""
        powers = [
            f.power_kw
            for f in self.facilities
            if f.power_kw is not None and (current is None or f.current == current)
        ]
        return max(powers) if powers else None

    def has_current(self, current: str) -> bool:
        return any(f.current == current for f in self.facilities)


class Major(enum.StrEnum):
    AVAILABLE = "available"
    NOT_AVAILABLE = "not-available"
    UNKNOWN = "unknown"


#: DOMAIN.md §9.2: the only valid (major, minor) pairs; a missing minor is accepted for
#: available and not-available because OCHP makes minor optional.
VALID_PAIRS = frozenset(
    {
        (Major.UNKNOWN, None),
        (Major.AVAILABLE, None),
        (Major.AVAILABLE, "available"),
        (Major.AVAILABLE, "reserved"),
        (Major.NOT_AVAILABLE, None),
        (Major.NOT_AVAILABLE, "charging"),
        (Major.NOT_AVAILABLE, "blocked"),
        (Major.NOT_AVAILABLE, "reserved"),
        (Major.NOT_AVAILABLE, "outoforder"),
    }
)


@dataclass(frozen=True)
class EvseStatus:
    """Live status as the operator sent it (wire values); expiry is decided when read."""

    major: Major
    minor: str | None = None
    ttl: datetime | None = None

    @property
    def valid_pair(self) -> bool:
        return (self.major, self.minor) in VALID_PAIRS

    def effective(self, now: datetime) -> EvseStatus:
        """What a reader sees at ``now``: a status whose ttl has passed reads as unknown."""
        if self.ttl is not None and self.ttl <= now:
            return UNKNOWN
        return self


UNKNOWN = EvseStatus(Major.UNKNOWN)


@dataclass(frozen=True)
class StoredEvse:
    """A stored record as a read answers it: the document and the current live status."""

    evse_key: str
    operator_key: str
    document: str
    last_update: datetime
    status: EvseStatus = field(default=UNKNOWN)
