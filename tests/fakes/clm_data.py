"""A fake CLM that serves one operator's EVSE data: ProvideEVSE-MasterData + ProvideEVSEStatusData.

gembus pulls EVSE master data and live status from every operator's charge-location
management system (DOMAIN.md §3.2, §3.3). This fake is such a CLM, a real spyne service for
each family, speaking the canonical contracts over SOAP 1.1:

* ``/clm/evse_masterdata`` (``wsdl/evse_masterdata.wsdl``): ``GetEvseMasterData`` (full read,
  paged, ordered by evseId, consistent with the ``asOf`` of page 1: a change after the
  ``snapshotAt`` of pages 2..n answers ``Client.SnapshotExpired``) and
  ``GetEvseMasterDataDelta`` (changes in ``(since, until]``, one per EVSE with its latest
  state, ordered by changedAt then evseId; a ``since`` before the fake's start answers
  ``Client.DeltaNotAvailable``).
* ``/clm/evse_status`` (``wsdl/evse_status.wsdl``): ``GetEvseStatus`` (all, or changed in
  ``(since, until]``, paged, ordered by evseId) and ``GetEvseStatusById`` (request order,
  unknown IDs ``notFound``). Every status is one of DOMAIN.md §9.2's valid pairs with a ttl.

The data set is deterministic: ``evses`` records (``DE*ICE*E0000001`` ...), generated from
``seed`` around German cities, about one in twelve a battery-swap station (a
``chargingFacility`` with ``batteryExchange`` true and no connectors), every one valid per
the XSD. Paging is the contract's: page 1 and 100 rows by default, at most ``max_page_size``
rows per page (pageInfo/pageSize says the size used), a page past the end answers
``Client.InvalidPaging``; ``operatorIds`` naming another operator answer
``Client.UnknownOperator``. Requests that break the canonical XSD answer
``Client.SchemaValidation``.

Records are rendered with lxml and handed to spyne as ``AnyXml`` elements that already carry
their element name (:class:`_RecordSoap11` appends them as they are): spyne decodes the
requests, dispatches and writes envelopes and faults, but it does not build 100,000 typed
records one attribute at a time, so a pull benchmark measures the client, not spyne. Only a
small state per EVSE (number, version, lastUpdate) is kept; a record is rendered the first
time a page holds it and its text kept (all of them before listening with ``--prerender``).

**Control** (``POST /_control`` with a JSON object; :class:`ClmDataProcess` wraps it):

* ``{"action": "change", "update": [ids], "delete": [ids], "insert": k, "reassign": {id:
  operatorId}}``: change records; answers the IDs touched and their ``changedAt``. Inserted
  EVSEs get the next numbers; a reassigned EVSE is updated to a record of another operator
  (its evseId and operatorId), which gembus must reject.
* ``{"action": "status", "evseIds": [ids], "ttl_s": s}``: a new live status for these EVSEs
  (``ttl_s``, optional: its ttl in seconds from now instead of the typical one).
* ``{"action": "mode", "mode": m, "delay_s": s, "after": n}``: from the (n+1)-th SOAP request
  on, answer in mode ``m``: ``ok``, ``slow`` (wait ``delay_s``, then answer), ``garbage``
  (200 with broken XML), ``schema_invalid`` (the real answer plus an element the XSD does not
  allow), ``http500`` (a plain-text HTTP 500) or ``fault`` (a ``Server.Unavailable`` SOAP
  fault). "Down" is a fake that is not started or killed.
* ``{"action": "info"}``: the number of EVSEs and the current mode.

As a process: ``python -m tests.fakes.clm_data --operator 'DE*ICE' --evses 2500 [--seed 7]
[--max-page-size 1000] [--mode slow --delay 5] [--prerender] [--port 0] [--log FILE]``; the
first stdout line is ``fake-clm-data listening on <base URL>``; :func:`start_clm_data_process`
does this.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from lxml import etree
from spyne import AnyXml, Application, ComplexModel, DateTime, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11

from bus.contracts import all_contracts
from bus.soap import Fault, SoapVersion, build_fault
from domain.identifiers import InvalidIdentifier, OperatorId
from tests.fakes.common import (
    COMMON_NS,
    FakeApplication,
    FaultSoap11,
    RecordingApp,
    RecordingProcess,
    argument_parser,
    body_child,
    gembus_fault,
    read_body,
    run,
)

MASTERDATA_NS = "urn:gembus:evse-masterdata:v1"
STATUS_NS = "urn:gembus:evse-status:v1"
EVSE_NS = "urn:gembus:evse:v1"
MASTERDATA_PATH = "/clm/evse_masterdata"
STATUS_PATH = "/clm/evse_status"
CONTROL_PATH = "/_control"
MODES = ("ok", "slow", "garbage", "schema_invalid", "http500", "fault")
#: Page size when the request names none (cmn:PageRequestType's documented default).
DEFAULT_PAGE_SIZE = 100
#: Initial records were last updated on this day (deterministic, before any asOf).
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
_V = TypeVar("_V")
GARBAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope '
    b'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><m:Get'
)


# ---------------------------------------------------------------------------------- records

CITIES = (
    ("Berlin", 52.520008, 13.404954, "10"),
    ("Hamburg", 53.551086, 9.993682, "20"),
    ("Muenchen", 48.137154, 11.576124, "80"),
    ("Koeln", 50.937531, 6.960279, "50"),
    ("Frankfurt am Main", 50.110924, 8.682127, "60"),
    ("Stuttgart", 48.775845, 9.182932, "70"),
    ("Leipzig", 51.339695, 12.373075, "04"),
    ("Dresden", 51.050407, 13.737262, "01"),
)
STREETS = ("Hauptstrasse", "Bahnhofstrasse", "Marktplatz", "Ringstrasse", "Am Hafen")
#: (connector standard, format, OICP plug, power type, voltage, amperage, kW, charging mode)
CHARGERS = (
    ("IEC_62196_T2", "Socket", "Type 2 Outlet", "AC_3_PHASE", 400, 32, "22", "Mode_3"),
    ("IEC_62196_T2", "Socket", "Type 2 Outlet", "AC_3_PHASE", 400, 16, "11", "Mode_3"),
    ("IEC_62196_T2_COMBO", "Cable", "CCS Combo 2 Plug (Cable Attached)", "DC", 500, 125, "50",
     "Mode_4"),
    ("IEC_62196_T2_COMBO", "Cable", "CCS Combo 2 Plug (Cable Attached)", "DC", 800, 250, "150",
     "Mode_4"),
    ("Chademo", "Cable", "CHAdeMO", "DC", 500, 125, "50", "CHAdeMO"),
    ("DOMESTIC_F", "Socket", "Type F Schuko", "AC_1_PHASE", 230, 16, "3.7", "Mode_2"),
)  # fmt: skip
AUTH_MODES = ("RfidMifareCls", "RfidMifareDes", "Remote", "Iec15118", "DirectCreditcard")
PAYMENTS = ("Contract", "Direct", "CreditCard", "Free")
ACCESS = ("Free publicly accessible", "Paying publicly accessible", "Restricted access")
LOCATION_TYPES = ("on-street", "parking-garage", "parking-lot", "underground-garage")
STATIC = ("Operative",) * 8 + ("Inoperative", "Planned")
#: DOMAIN.md §9.2: the valid (major, minor) pairs and a typical ttl in minutes.
STATUS_PAIRS = (
    ("available", "available", 5),
    ("available", "reserved", 15),
    ("not-available", "charging", 40),
    ("not-available", "blocked", 10),
    ("not-available", "reserved", 30),
    ("not-available", "outoforder", 600),
    ("unknown", None, 60),
)


class Rng:
    """splitmix64: deterministic and cheap to seed (random.Random's seeding costs ~20 us,
    more than rendering a record), good enough to spread test data."""

    __slots__ = ("state",)
    MASK = (1 << 64) - 1

    def __init__(self, *seed: int) -> None:
        self.state = 0
        for part in seed:
            self.state = (self.state * 0x100000001B3 + part + self.next()) & self.MASK

    def next(self) -> int:
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def random(self) -> float:
        return self.next() / 2.0**64

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def choice(self, values: Sequence[_V]) -> _V:
        return values[self.below(len(values))]

    def sample(self, values: Sequence[_V], k: int) -> list[_V]:
        pool = list(values)
        return [pool.pop(self.below(len(pool))) for _ in range(k)]


@dataclass(frozen=True)
class EvseState:
    """What the fake keeps per EVSE; the record is rendered from it on demand.

    ``operator_id``: render the record as another operator's EVSE (its evseId and
    operatorId), data a CLM must not send and gembus must reject; None: the CLM's own.
    """

    number: int
    version: int
    last_update: datetime
    operator_id: str | None = None


def evse_id_of(operator_id: str, number: int) -> str:
    """``DE*ICE`` + 7 -> ``DE*ICE*E0000007`` (``DEICE`` -> ``DEICEE0000007``)."""
    return f"{operator_id}{'*' if '*' in operator_id else ''}E{number:07d}"


def _el(tag: str, text: str) -> str:
    """``<ev:tag>text</ev:tag>``; every text comes from the tables above, numbers or the
    operator ID (checked by OperatorId.parse), none holds a markup character."""
    return f"<ev:{tag}>{text}</ev:{tag}>"


def _list(wrapper: str, item: str, values: Iterable[str]) -> str:
    return f"<ev:{wrapper}>{''.join(_el(item, v) for v in values)}</ev:{wrapper}>"


def render_record(operator_id: str, seed: int, state: EvseState) -> str:
    """One ``m:evse`` element (ev:EvseRecordType) as XML text, deterministic in (seed, number,
    version); prefixes m, ev and cmn are bound by :func:`render_records`.

    Location, kind and equipment depend on the number only; a new version changes the
    variable fields (static status, payment, telephone, reservable) and lastUpdate. Text, not
    lxml calls: one parse per page is several times faster than 60 SubElement calls a record.
    """
    fixed = Rng(seed, state.number)
    varying = Rng(seed, state.number, state.version + 1)
    city, lat, lon, postal = fixed.choice(CITIES)
    swap = fixed.random() < 0.08
    location = state.number // 4
    kind = "Batteriewechselstation" if swap else "Ladepark"
    parts = [
        "<m:evse>",
        _el("evseId", evse_id_of(operator_id, state.number)),
        _el("operatorId", operator_id),
        _el("operatorName", "ICE Charging GmbH"),
        _el("locationId", f"LOC{location:06d}"),
        f'<ev:locationNames><ev:name lang="de">{kind} {city} {location}'
        "</ev:name></ev:locationNames>",
        _address(fixed, city, postal),
        f"<ev:coordinates><cmn:latitude>{lat + fixed.uniform(-0.08, 0.08):.6f}</cmn:latitude>"
        f"<cmn:longitude>{lon + fixed.uniform(-0.12, 0.12):.6f}</cmn:longitude></ev:coordinates>",
        _el("locationType", fixed.choice(LOCATION_TYPES)),
        _el("accessibility", fixed.choice(ACCESS)),
        _battery_swap(fixed) if swap else _charging_point(fixed),
        _terms(fixed, varying),
        _el("lastUpdate", state.last_update.isoformat()),
        "</m:evse>",
    ]
    return "".join(parts)


def render_records(texts: Iterable[str]) -> list[etree._Element]:
    """Parse rendered records (one parse for a whole page) into ``m:evse`` elements."""
    document = (
        f'<m:records xmlns:m="{MASTERDATA_NS}" xmlns:ev="{EVSE_NS}" xmlns:cmn="{COMMON_NS}">'
        f"{''.join(texts)}</m:records>"
    )
    return list(etree.fromstring(document.encode()))


def _address(rng: Rng, city: str, postal: str) -> str:
    return (
        f"<ev:address><cmn:country>DE</cmn:country><cmn:city>{city}</cmn:city>"
        f"<cmn:postalCode>{postal}{rng.below(1000):03d}</cmn:postalCode>"
        f"<cmn:street>{rng.choice(STREETS)}</cmn:street>"
        f"<cmn:houseNumber>{1 + rng.below(199)}</cmn:houseNumber>"
        "<cmn:timeZone>Europe/Berlin</cmn:timeZone></ev:address>"
    )


def _charger_xml(charger: tuple[str, str, str, str, int, int, str, str]) -> tuple[str, str]:
    standard, fmt, _plug, power_type, voltage, amperage, kw, _mode = charger
    connector = f"<ev:connector>{_el('connectorStandard', standard)}{_el('connectorFormat', fmt)}"
    facility = (
        "<ev:chargingFacility><ev:batteryExchange>false</ev:batteryExchange>"
        f"{_el('powerType', power_type)}{_el('voltage', str(voltage))}"
        f"{_el('amperage', str(amperage))}{_el('powerKw', kw)}</ev:chargingFacility>"
    )
    return connector + "</ev:connector>", facility


#: Each charger's connector and chargingFacility elements, rendered once.
CHARGER_XML = tuple(_charger_xml(c) for c in CHARGERS)


def _charging_point(rng: Rng) -> str:
    chosen = rng.sample(range(len(CHARGERS)), rng.choice((1, 1, 2)))
    return (
        f"<ev:connectors>{''.join(CHARGER_XML[i][0] for i in chosen)}</ev:connectors>"
        + _list("plugs", "plug", dict.fromkeys(CHARGERS[i][2] for i in chosen))
        + f"<ev:chargingFacilities>{''.join(CHARGER_XML[i][1] for i in chosen)}"
        "</ev:chargingFacilities>"
        + _list("chargingModes", "chargingMode", dict.fromkeys(CHARGERS[i][7] for i in chosen))
    )


def _battery_swap(rng: Rng) -> str:
    return (
        "<ev:chargingFacilities><ev:chargingFacility><ev:batteryExchange>true"
        "</ev:batteryExchange></ev:chargingFacility></ev:chargingFacilities>"
        + _el("maxCapacityKwh", rng.choice(("22", "40", "75.5")))
    )


def _terms(fixed: Rng, varying: Rng) -> str:
    reservable = varying.random() < 0.4
    parts = [
        _list("authModes", "authMode", fixed.sample(AUTH_MODES, 1 + fixed.below(3))),
        _list("paymentOptions", "paymentOption", [varying.choice(PAYMENTS)]),
        _list("valueAddedServices", "valueAddedService", ["Reservation"]) if reservable else "",
        _opening_times(fixed),
        _el("staticStatus", varying.choice(STATIC)),
        _el("telephone", f"+49 30 {1_000_000 + varying.below(8_999_999)}"),
        _el("reservable", "true" if reservable else "false"),
        _el("maxReservationMinutes", "30") if reservable else "",
        _el("renewableEnergy", "true" if fixed.random() < 0.5 else "false"),
        _el("dynamicInfoAvailable", "true"),
    ]
    return "".join(parts)


def _opening_times(rng: Rng) -> str:
    if rng.random() < 0.7:
        hours = _el("twentyfourseven", "true")
    else:
        hours = (
            "<ev:regularHours>"
            + "".join(
                f"<ev:regularHours>{_el('weekday', str(day))}<ev:periodBegin>06:00</ev:periodBegin>"
                "<ev:periodEnd>22:00</ev:periodEnd></ev:regularHours>"
                for day in range(1, 7)
            )
            + "</ev:regularHours>"
        )
    return f"<ev:openingTimes>{hours}<ev:closedCharging>false</ev:closedCharging></ev:openingTimes>"


# ---------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class LiveStatus:
    major: str
    minor: str | None
    ttl: datetime
    changed_at: datetime


@dataclass(frozen=True)
class Change:
    """One entry of the change log; ``state`` is None for a delete."""

    changed_at: datetime
    evse_id: str
    delta_type: str
    state: EvseState | None


class _Clock:
    """UTC, strictly increasing: no change and no asOf ever share an instant."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def tick(self) -> datetime:
        now = datetime.now(UTC)
        self._last = now if now > self._last else self._last + timedelta(microseconds=1)
        return self._last


@dataclass
class Page:
    items: list[Any]
    as_of: datetime
    page: int
    page_size: int
    total: int


@dataclass
class ClmDataState:
    """Everything one fake CLM knows; every method takes the lock."""

    operator_id: str
    evse_count: int
    seed: int = 7
    max_page_size: int = 1000
    mode: str = "ok"
    delay_s: float = 0.0
    after: int = 0  # SOAP requests still answered normally before ``mode`` applies
    evses: dict[str, EvseState] = field(default_factory=dict)
    statuses: dict[str, LiveStatus] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock: _Clock = field(default_factory=_Clock)
    _sorted: list[str] | None = None
    _texts: dict[EvseState, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.operator_key = OperatorId.parse(self.operator_id).key
        self.history_start = self.clock.tick()
        for number in range(1, self.evse_count + 1):
            last_update = BASE_TIME + timedelta(seconds=number % 86_400)
            self._put(EvseState(number, 0, last_update), self.history_start)
        self.next_number = self.evse_count + 1

    # ---- data

    def _put(self, state: EvseState, at: datetime) -> str:
        evse_id = evse_id_of(self.operator_id, state.number)
        self.evses[evse_id] = state
        self.statuses[evse_id] = self._new_status(state.number, state.version, at)
        self._sorted = None
        return evse_id

    def _new_status(self, number: int, version: int, at: datetime) -> LiveStatus:
        rng = Rng(self.seed, number, version, 2)
        major, minor, minutes = rng.choice(STATUS_PAIRS)
        return LiveStatus(major, minor, at + timedelta(minutes=minutes), at)

    def sorted_ids(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.evses)
        return self._sorted

    def render(self, states: Iterable[EvseState]) -> list[etree._Element]:
        return render_records(self._text(s) for s in states)

    def _text(self, state: EvseState) -> str:
        """A record's text, rendered once per state (a state is immutable; a change makes a
        new one): a CLM serves its records from storage, it does not compute them anew."""
        text = self._texts.get(state)
        if text is None:
            text = render_record(state.operator_id or self.operator_id, self.seed, state)
            self._texts[state] = text
        return text

    def prerender(self) -> None:
        """Render every current record now, so that pulls measure gembus and the wire, not
        the fake's generator (the benchmark's fake shares the CPU with gembus)."""
        with self.lock:
            for state in self.evses.values():
                self._text(state)

    def change(
        self,
        update: list[str],
        delete: list[str],
        insert: int,
        reassign: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Apply changes now; each one gets its own changedAt and a change-log entry.
        ``reassign`` (EVSE ID -> operator ID) updates EVSEs to records of another operator."""
        with self.lock:
            done: dict[str, Any] = {"updated": [], "deleted": [], "inserted": []}
            renamed = dict(reassign or {})
            for evse_id in [*update, *renamed]:
                old = self.evses[evse_id]
                at = self.clock.tick()
                state = EvseState(old.number, old.version + 1, at, renamed.get(evse_id))
                self._put(state, at)
                self.changes.append(Change(at, evse_id, "update", state))
                done["updated"].append(evse_id)
            for evse_id in delete:
                del self.evses[evse_id]
                del self.statuses[evse_id]
                self._sorted = None
                self.changes.append(Change(self.clock.tick(), evse_id, "delete", None))
                done["deleted"].append(evse_id)
            for _ in range(insert):
                at = self.clock.tick()
                state = EvseState(self.next_number, 0, at)
                self.next_number += 1
                evse_id = self._put(state, at)
                self.changes.append(Change(at, evse_id, "insert", state))
                done["inserted"].append(evse_id)
            done["changedUntil"] = self.clock.tick().isoformat()
            return done

    def change_status(self, evse_ids: list[str], ttl_s: float | None = None) -> list[str]:
        """A new live status for each EVSE; ``ttl_s`` overrides its typical ttl (seconds)."""
        with self.lock:
            for evse_id in evse_ids:
                state = self.evses[evse_id]
                version = int(self.clock.tick().timestamp() * 1e6)
                status = self._new_status(state.number, version, self.clock.tick())
                if ttl_s is not None:
                    status = replace(status, ttl=status.changed_at + timedelta(seconds=ttl_s))
                self.statuses[evse_id] = status
            return evse_ids

    # ---- reads

    def check_operators(self, operator_ids: list[str] | None) -> None:
        for operator_id in operator_ids or ():
            try:
                key = OperatorId.parse(operator_id).key
            except InvalidIdentifier:
                key = None
            if key != self.operator_key:
                raise gembus_fault(
                    "Client.UnknownOperator",
                    f"this CLM hosts no operator {operator_id}",
                    "operatorIds/operatorId",
                )

    def page_bounds(self, paging: Any, total: int) -> tuple[int, int]:
        """(page, size used) per the contract; a page past the end is Client.InvalidPaging."""
        page = int(paging.page) if paging is not None and paging.page else 1
        asked = int(paging.pageSize) if paging is not None and paging.pageSize else None
        size = min(asked or DEFAULT_PAGE_SIZE, self.max_page_size)
        if page > 1 and (page - 1) * size >= total:
            raise gembus_fault(
                "Client.InvalidPaging",
                f"page {page} of {size} rows is past the {total} rows of this read",
                "paging/page",
            )
        return page, size

    def full_page(self, snapshot_at: datetime | None, paging: Any) -> Page:
        with self.lock:
            if (
                snapshot_at is not None
                and self.changes
                and self.changes[-1].changed_at > snapshot_at
            ):
                raise gembus_fault(
                    "Client.SnapshotExpired",
                    f"the data changed after snapshotAt {snapshot_at.isoformat()}",
                    "snapshotAt",
                )
            as_of = snapshot_at or self.clock.tick()
            ids = self.sorted_ids()
            page, size = self.page_bounds(paging, len(ids))
            chosen = [self.evses[i] for i in ids[(page - 1) * size : page * size]]
            total = len(ids)
        return Page(self.render(chosen), as_of, page, size, total)

    def delta_page(self, since: datetime, until: datetime | None, paging: Any) -> Page:
        with self.lock:
            if since < self.history_start:
                raise gembus_fault(
                    "Client.DeltaNotAvailable",
                    f"changes are kept since {self.history_start.isoformat()} only",
                    "since",
                )
            until = until or self.clock.tick()
            latest = self._latest_changes(since, until)
            page, size = self.page_bounds(paging, len(latest))
            chosen = latest[(page - 1) * size : page * size]
        records = iter(self.render(c.state for c in chosen if c.state is not None))
        items = [
            EvseChange(
                evseId=c.evse_id,
                deltaType=c.delta_type,
                changedAt=c.changed_at,
                evse=next(records) if c.state is not None else None,
            )
            for c in chosen
        ]
        return Page(items, until, page, size, len(latest))

    def _latest_changes(self, since: datetime, until: datetime) -> list[Change]:
        times = [c.changed_at for c in self.changes]
        window = self.changes[bisect.bisect_right(times, since) : bisect.bisect_right(times, until)]
        latest = {c.evse_id: c for c in window}  # later entries win, a delete included
        return sorted(latest.values(), key=lambda c: (c.changed_at, c.evse_id))

    def status_page(self, since: datetime | None, until: datetime | None, paging: Any) -> Page:
        with self.lock:
            until = until or self.clock.tick()
            ids = [
                i
                for i in self.sorted_ids()
                if since is None or since < self.statuses[i].changed_at <= until
            ]
            page, size = self.page_bounds(paging, len(ids))
            chosen = [(i, self.statuses[i]) for i in ids[(page - 1) * size : page * size]]
        items = [EvseStatus(evseId=i, major=s.major, minor=s.minor, ttl=s.ttl) for i, s in chosen]
        return Page(items, until, page, size, len(ids))

    def status_by_id(self, evse_ids: list[str]) -> list[EvseStatusLookup]:
        with self.lock:
            found = [(i, self.statuses.get(i)) for i in evse_ids]
        return [
            EvseStatusLookup(evseId=i, result="notFound")
            if s is None
            else EvseStatusLookup(
                evseId=i,
                result="found",
                status=EvseStatusValue(major=s.major, minor=s.minor, ttl=s.ttl),
            )
            for i, s in found
        ]

    # ---- failure modes

    def set_mode(self, mode: str, delay_s: float = 0.0, after: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self.lock:
            self.mode, self.delay_s, self.after = mode, delay_s, after

    def mode_for_request(self) -> str:
        """The mode this SOAP request is answered in (counts down ``after`` first)."""
        with self.lock:
            if self.after > 0:
                self.after -= 1
                return "ok"
            return self.mode


# ---------------------------------------------------------------------------------- spyne

_Req = Unicode(min_occurs=1, nillable=False)
_Opt = Unicode(min_occurs=0, nillable=False)
_OptTime = DateTime(min_occurs=0, nillable=False)


class PageRequest(ComplexModel):
    __namespace__ = COMMON_NS
    __type_name__ = "PageRequestType"
    _type_info = [("page", Integer(min_occurs=0)), ("pageSize", Integer(min_occurs=0))]


class PageInfo(ComplexModel):
    __namespace__ = COMMON_NS
    __type_name__ = "PageInfoType"
    _type_info = [
        ("page", Integer(min_occurs=1)),
        ("pageSize", Integer(min_occurs=1)),
        ("totalCount", Integer(min_occurs=1)),
    ]


class OperatorIdList(ComplexModel):
    __namespace__ = EVSE_NS
    __type_name__ = "OperatorIdListType"
    _type_info = [("operatorId", Unicode(max_occurs=100, nillable=False))]


class EvseChange(ComplexModel):
    __namespace__ = MASTERDATA_NS
    __type_name__ = "EvseChangeType"
    _type_info = [
        ("evseId", _Req),
        ("deltaType", _Req),
        ("changedAt", DateTime(min_occurs=1, nillable=False)),
        ("evse", AnyXml(min_occurs=0, nillable=False)),
    ]


class EvseStatus(ComplexModel):
    __namespace__ = EVSE_NS
    __type_name__ = "EvseStatusType"
    _type_info = [("evseId", _Req), ("major", _Req), ("minor", _Opt), ("ttl", _OptTime)]


class EvseStatusValue(ComplexModel):
    __namespace__ = EVSE_NS
    __type_name__ = "EvseStatusValueType"
    _type_info = [("major", _Req), ("minor", _Opt), ("ttl", _OptTime)]


class EvseStatusLookup(ComplexModel):
    __namespace__ = EVSE_NS
    __type_name__ = "EvseStatusLookupType"
    _type_info = [("evseId", _Req), ("result", _Req), ("status", EvseStatusValue)]


def _page_info(page: Page) -> PageInfo:
    return PageInfo(page=page.page, pageSize=page.page_size, totalCount=page.total)


def _operator_ids(value: OperatorIdList | None) -> list[str] | None:
    return list(value.operatorId or ()) if value is not None else None


def _state(ctx: Any) -> ClmDataState:
    state: ClmDataState = ctx.app.fake_state
    return state


class EvseMasterDataService(ServiceBase):
    """urn:gembus:evse-masterdata:v1 as the operator's CLM implements it."""

    @rpc(
        OperatorIdList,
        _OptTime,
        PageRequest,
        _returns=(AnyXml(max_occurs=1000), DateTime(min_occurs=1), PageInfo),
        _out_variable_names=("evse", "asOf", "pageInfo"),
    )
    def GetEvseMasterData(
        ctx: Any, operatorIds: OperatorIdList | None, snapshotAt: datetime | None, paging: Any
    ) -> tuple[list[etree._Element], datetime, PageInfo]:
        state = _state(ctx)
        state.check_operators(_operator_ids(operatorIds))
        page = state.full_page(snapshotAt, paging)
        return page.items, page.as_of, _page_info(page)

    @rpc(
        OperatorIdList,
        DateTime(min_occurs=1, nillable=False),
        _OptTime,
        PageRequest,
        _returns=(EvseChange.customize(max_occurs=1000), DateTime(min_occurs=1), PageInfo),
        _out_variable_names=("evseChange", "asOf", "pageInfo"),
    )
    def GetEvseMasterDataDelta(
        ctx: Any,
        operatorIds: OperatorIdList | None,
        since: datetime,
        until: datetime | None,
        paging: Any,
    ) -> tuple[list[EvseChange], datetime, PageInfo]:
        state = _state(ctx)
        state.check_operators(_operator_ids(operatorIds))
        page = state.delta_page(since, until, paging)
        return page.items, page.as_of, _page_info(page)


class EvseStatusService(ServiceBase):
    """urn:gembus:evse-status:v1 as the operator's CLM implements it."""

    @rpc(
        OperatorIdList,
        _OptTime,
        _OptTime,
        PageRequest,
        _returns=(EvseStatus.customize(max_occurs=1000), DateTime(min_occurs=1), PageInfo),
        _out_variable_names=("evseStatus", "asOf", "pageInfo"),
    )
    def GetEvseStatus(
        ctx: Any,
        operatorIds: OperatorIdList | None,
        since: datetime | None,
        until: datetime | None,
        paging: Any,
    ) -> tuple[list[EvseStatus], datetime, PageInfo]:
        state = _state(ctx)
        state.check_operators(_operator_ids(operatorIds))
        page = state.status_page(since, until, paging)
        return page.items, page.as_of, _page_info(page)

    @rpc(
        Unicode(max_occurs=100, nillable=False),
        _returns=EvseStatusLookup.customize(max_occurs=100),
        _out_variable_name="evseStatus",
    )
    def GetEvseStatusById(ctx: Any, evseId: list[str]) -> list[EvseStatusLookup]:
        return _state(ctx).status_by_id(list(evseId or ()))


class _RecordSoap11(FaultSoap11):
    """Soap11 that appends an AnyXml value already named like its element as it is.

    spyne wraps AnyXml values in an element of the field's name; the fake renders each
    record as the ``m:evse`` element itself, so wrapping would nest it one level too deep.
    """

    def any_xml_to_parent(
        self, ctx: Any, cls: Any, inst: Any, parent: Any, ns: Any, name: Any, **kw: Any
    ) -> Any:
        if isinstance(inst, etree._Element) and inst.tag == f"{{{ns}}}{name}":
            parent.append(inst)
            return None
        return super().any_xml_to_parent(ctx, cls, inst, parent, ns, name, **kw)


def _application(service: type[ServiceBase], tns: str, state: ClmDataState) -> Application:
    app = FakeApplication(
        [service],
        tns=tns,
        name=service.__name__,
        in_protocol=Soap11(validator=None),
        out_protocol=_RecordSoap11(),
    )
    app.fake_state = state
    return app


# ---------------------------------------------------------------------------------- WSGI


class ClmDataApp:
    """The fake CLM as one WSGI app: both families, the control endpoint, the failure modes."""

    def __init__(self, state: ClmDataState, log_path: str | None = None) -> None:
        self.state = state
        description = f"fake CLM data of {state.operator_id} ({state.evse_count} EVSEs)"
        self.families = {
            MASTERDATA_PATH: RecordingApp(
                _application(EvseMasterDataService, MASTERDATA_NS, state),
                description=description,
                contract="evse_masterdata",
                log_path=log_path,
            ),
            STATUS_PATH: RecordingApp(
                _application(EvseStatusService, STATUS_NS, state),
                description=description,
                contract="evse_status",
                log_path=log_path,
            ),
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == CONTROL_PATH and environ.get("REQUEST_METHOD") == "POST":
            return self._control(environ, start_response)
        family = self.families.get(path, self.families[MASTERDATA_PATH])
        if environ.get("REQUEST_METHOD") != "POST":
            return family(environ, start_response)
        return self._soap(family, environ, start_response)

    def _soap(self, family: RecordingApp, environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        mode = self.state.mode_for_request()
        if mode == "slow":
            time.sleep(self.state.delay_s)
        if mode == "http500":
            start("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"Internal Server Error\n"]
        if mode == "garbage":
            start("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
            return [GARBAGE]
        if mode == "fault":
            return _fault(start, "Server.Unavailable", "the CLM is in maintenance")
        body = read_body(environ)
        problem = _request_problem(family, body)
        if problem is not None:
            return _fault(start, "Client.SchemaValidation", problem)
        environ["wsgi.input"] = _Body(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if mode == "schema_invalid":
            return _schema_invalid(family, environ, start)
        return family(environ, start)

    def _control(self, environ: dict[str, Any], start: Any) -> Iterable[bytes]:
        command = json.loads(read_body(environ) or b"{}")
        action = command.get("action")
        answer: Any
        if action == "change":
            answer = self.state.change(
                list(command.get("update", ())),
                list(command.get("delete", ())),
                int(command.get("insert", 0)),
                dict(command.get("reassign", {})),
            )
        elif action == "status":
            ttl_s = command.get("ttl_s")
            changed = self.state.change_status(
                list(command["evseIds"]), float(ttl_s) if ttl_s is not None else None
            )
            answer = {"changed": changed}
        elif action == "mode":
            self.state.set_mode(
                command["mode"], float(command.get("delay_s", 0)), int(command.get("after", 0))
            )
            answer = {"mode": command["mode"]}
        elif action == "info":
            answer = {"evses": len(self.state.evses), "mode": self.state.mode}
        else:
            start("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"unknown action {action!r}\n".encode()]
        start("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]


class _Body:
    """A re-readable wsgi.input for spyne after the fake read the body itself."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk


def _request_problem(family: RecordingApp, body: bytes) -> str | None:
    """Why a request breaks the canonical XSD, or None (the fake checks what gembus sends)."""
    child = body_child(body)
    if child is None:
        return "the request is not a SOAP envelope with one Body child"
    schema = all_contracts()[family.contract or ""].schema
    if schema.validate(child):
        return None
    error = schema.error_log[0]
    return f"line {error.line}: {error.message}"[:2000]


def _fault(start: Any, code: str, message: str) -> list[bytes]:
    start("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
    return [build_fault(SoapVersion.SOAP11, Fault(code, message))]


def _schema_invalid(family: RecordingApp, environ: dict[str, Any], start: Any) -> list[bytes]:
    """The real answer with an element no operation's response allows, appended to its Body
    child: well-formed XML that a validating client must refuse."""
    captured: list[Any] = []
    body = b"".join(family(environ, lambda status, headers: captured.extend((status, headers))))
    root = etree.fromstring(body)
    child = root[-1][0]
    etree.SubElement(child, f"{{{etree.QName(child).namespace}}}unexpected").text = "1"
    start(captured[0], [(k, v) for k, v in captured[1] if k.lower() != "content-length"])
    return [etree.tostring(root, xml_declaration=True, encoding="utf-8")]


def make_clm_data_app(
    operator_id: str,
    evses: int,
    *,
    seed: int = 7,
    max_page_size: int = 1000,
    mode: str = "ok",
    delay_s: float = 0.0,
    log_path: str | None = None,
    prerender: bool = False,
) -> ClmDataApp:
    """A fake CLM of ``operator_id`` serving ``evses`` generated EVSEs, as a WSGI app."""
    state = ClmDataState(operator_id, evses, seed=seed, max_page_size=max_page_size)
    state.set_mode(mode, delay_s)
    if prerender:
        state.prerender()
    return ClmDataApp(state, log_path)


# ---------------------------------------------------------------------------------- process


class ClmDataProcess(RecordingProcess):
    """The fake as its own process; :meth:`control` and friends drive ``/_control``."""

    module: ClassVar[str] = "tests.fakes.clm_data"
    banner: ClassVar[str] = "fake-clm-data"
    label: ClassVar[str] = "fake CLM data"
    path: ClassVar[str] = MASTERDATA_PATH

    @property
    def masterdata_url(self) -> str:
        return self.base_url + MASTERDATA_PATH

    @property
    def status_url(self) -> str:
        return self.base_url + STATUS_PATH

    def control(self, **command: Any) -> Any:
        request = urllib.request.Request(
            self.base_url + CONTROL_PATH,
            data=json.dumps(command).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def change(
        self,
        *,
        update: Iterable[str] = (),
        delete: Iterable[str] = (),
        insert: int = 0,
        reassign: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        answer: dict[str, Any] = self.control(
            action="change",
            update=list(update),
            delete=list(delete),
            insert=insert,
            reassign=dict(reassign or {}),
        )
        return answer

    def new_status(self, evse_ids: Iterable[str], *, ttl_s: float | None = None) -> list[str]:
        """A new live status for these EVSEs (with a ttl of ``ttl_s`` seconds, if given)."""
        command: dict[str, Any] = {"action": "status", "evseIds": list(evse_ids)}
        if ttl_s is not None:
            command["ttl_s"] = ttl_s
        changed: list[str] = self.control(**command)["changed"]
        return changed

    def set_mode(self, mode: str, *, delay_s: float = 0.0, after: int = 0) -> None:
        self.control(action="mode", mode=mode, delay_s=delay_s, after=after)


def start_clm_data_process(
    operator_id: str = "DE*ICE",
    *,
    evses: int = 100,
    seed: int = 7,
    max_page_size: int = 1000,
    mode: str = "ok",
    delay_s: float = 0.0,
    port: int = 0,
    log_path: str | None = None,
    startup_timeout: float = 30.0,
    prerender: bool = False,
) -> ClmDataProcess:
    """Run ``python -m tests.fakes.clm_data`` and return once it listens."""
    args = ["--operator", operator_id, "--evses", str(evses), "--seed", str(seed)]
    args += ["--max-page-size", str(max_page_size), "--mode", mode, "--delay", str(delay_s)]
    args += ["--port", str(port)] + (["--prerender"] if prerender else [])
    if log_path is not None:
        args += ["--log", log_path]
    return ClmDataProcess.start(args, log_path=log_path, startup_timeout=startup_timeout)


def iter_evse_ids(operator_id: str, first: int, last: int) -> Iterator[str]:
    """The IDs the fake generates for numbers first..last (inclusive)."""
    return (evse_id_of(operator_id, n) for n in range(first, last + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser(
        ClmDataProcess,
        "Fake CLM serving ProvideEVSE-MasterData and ProvideEVSEStatusData.",
        delay_help="seconds to wait per request in mode slow",
        log_help="append every SOAP request to this file",
    )
    parser.add_argument("--operator", required=True, help="EVSE operator ID, e.g. DE*ICE")
    parser.add_argument("--evses", type=int, default=100, help="EVSEs to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-page-size", type=int, default=1000)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument(
        "--prerender",
        action="store_true",
        help="render every record before listening (pulls then measure the client)",
    )
    args = parser.parse_args(argv)
    app = make_clm_data_app(
        args.operator,
        args.evses,
        seed=args.seed,
        max_page_size=args.max_page_size,
        mode=args.mode,
        delay_s=args.delay,
        log_path=args.log,
        prerender=args.prerender,
    )
    run(app, args, ClmDataProcess)


if __name__ == "__main__":
    main()
