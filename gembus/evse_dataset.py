"""A realistic Europe-wide EVSE dataset for demos and the Search EVSE benchmark.

EVSEs cluster around cities in proportion to their population (a normal spread whose width
grows with the city), with a rural share spread along the roads between them; plugs, power,
access and payment follow the mix of today's public networks (mostly AC Type 2, a fifth DC
fast chargers, a few battery-swap stations). Every EVSE gets a live status.

Rows are written through the same projection the repository writes (persistence/evse.py),
with COPY on PostgreSQL (persistence/bulk.py) and plain INSERTs on SQLite.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, text

from domain.charging.model import Address, EvseRecord, EvseStatus, Facility, Major, OpeningTimes
from domain.identifiers import EvseId, OperatorId
from persistence.bulk import copy_rows
from persistence.evse import DOCUMENT, EVSE, STATUS, projection

#: (city, country, latitude, longitude, population in millions)
CITIES = (
    ("London", "GB", 51.507351, -0.127758, 9.0),
    ("Paris", "FR", 48.856613, 2.352222, 11.0),
    ("Berlin", "DE", 52.520008, 13.404954, 3.7),
    ("Madrid", "ES", 40.416775, -3.703790, 6.6),
    ("Rome", "IT", 41.902782, 12.496366, 4.3),
    ("Hamburg", "DE", 53.551086, 9.993682, 1.9),
    ("Munich", "DE", 48.135124, 11.581981, 1.5),
    ("Vienna", "AT", 48.208176, 16.373819, 1.9),
    ("Warsaw", "PL", 52.229676, 21.012229, 1.8),
    ("Barcelona", "ES", 41.385063, 2.173404, 5.5),
    ("Milan", "IT", 45.464203, 9.189982, 3.1),
    ("Amsterdam", "NL", 52.367573, 4.904139, 1.2),
    ("Rotterdam", "NL", 51.924419, 4.477733, 1.0),
    ("Brussels", "BE", 50.850346, 4.351721, 1.2),
    ("Stockholm", "SE", 59.329323, 18.068581, 1.6),
    ("Oslo", "NO", 59.913868, 10.752245, 1.0),
    ("Copenhagen", "DK", 55.676098, 12.568337, 1.3),
    ("Prague", "CZ", 50.075539, 14.437800, 1.3),
    ("Budapest", "HU", 47.497913, 19.040236, 1.8),
    ("Lisbon", "PT", 38.722252, -9.139337, 2.8),
    ("Dublin", "IE", 53.349804, -6.260310, 1.4),
    ("Zurich", "CH", 47.376888, 8.541694, 1.4),
    ("Cologne", "DE", 50.937531, 6.960279, 1.1),
    ("Frankfurt", "DE", 50.110924, 8.682127, 0.8),
    ("Stuttgart", "DE", 48.775845, 9.182932, 0.6),
    ("Lyon", "FR", 45.764042, 4.835659, 2.3),
    ("Marseille", "FR", 43.296482, 5.369780, 1.8),
    ("Manchester", "GB", 53.480759, -2.242631, 2.8),
    ("Birmingham", "GB", 52.486243, -1.890401, 2.9),
    ("Helsinki", "FI", 60.169857, 24.938379, 1.3),
    ("Athens", "GR", 37.983810, 23.727539, 3.2),
    ("Naples", "IT", 40.851799, 14.268120, 3.0),
    ("Turin", "IT", 45.070339, 7.686864, 1.7),
    ("Krakow", "PL", 50.064651, 19.944981, 0.8),
    ("Gothenburg", "SE", 57.708870, 11.974560, 1.0),
    ("Antwerp", "BE", 51.219448, 4.402464, 1.0),
    ("Utrecht", "NL", 52.090736, 5.121420, 0.7),
    ("Eindhoven", "NL", 51.441643, 5.469722, 0.7),
    ("Dusseldorf", "DE", 51.227741, 6.773456, 0.6),
    ("Leipzig", "DE", 51.339695, 12.373075, 0.6),
    ("Valencia", "ES", 39.469906, -0.376288, 1.6),
    ("Seville", "ES", 37.389091, -5.984459, 1.3),
    ("Porto", "PT", 41.157944, -8.629105, 1.7),
    ("Bordeaux", "FR", 44.837788, -0.579180, 1.2),
    ("Toulouse", "FR", 43.604652, 1.444209, 1.4),
    ("Lille", "FR", 50.629250, 3.057256, 1.2),
    ("Nice", "FR", 43.710175, 7.261953, 1.0),
    ("Geneva", "CH", 46.204391, 6.143158, 0.6),
    ("Bergen", "NO", 60.391262, 5.322054, 0.4),
    ("Aarhus", "DK", 56.162939, 10.203921, 0.4),
    ("Bratislava", "SK", 48.148598, 17.107748, 0.7),
    ("Ljubljana", "SI", 46.056946, 14.505751, 0.3),
    ("Zagreb", "HR", 45.815010, 15.981919, 0.8),
    ("Bucharest", "RO", 44.426765, 26.102537, 2.1),
    ("Sofia", "BG", 42.697708, 23.321868, 1.3),
    ("Vilnius", "LT", 54.687157, 25.279652, 0.7),
    ("Riga", "LV", 56.949650, 24.105186, 0.6),
    ("Tallinn", "EE", 59.436962, 24.753574, 0.4),
    ("Luxembourg", "LU", 49.611622, 6.131935, 0.6),
    ("Edinburgh", "GB", 55.953251, -3.188267, 0.9),
    ("Glasgow", "GB", 55.864239, -4.251806, 1.8),
    ("Hanover", "DE", 52.375893, 9.732010, 0.6),
    ("Nuremberg", "DE", 49.452103, 11.076665, 0.8),
    ("Bologna", "IT", 44.494887, 11.342616, 1.0),
    ("Florence", "IT", 43.769562, 11.255814, 1.0),
    ("Wroclaw", "PL", 51.107883, 17.038538, 0.7),
    ("Gdansk", "PL", 54.352024, 18.646639, 0.8),
    ("Poznan", "PL", 52.406376, 16.925167, 0.6),
)
#: (plugs, connectors, powerType, kW, modes, weight): the mix of public charging today.
_KINDS = (
    (("Type 2 Outlet",), ("IEC_62196_T2",), "AC_3_PHASE", 22.0, ("Mode_3",), 45),
    (("Type 2 Outlet",), ("IEC_62196_T2",), "AC_3_PHASE", 11.0, ("Mode_3",), 20),
    (
        ("Type 2 Outlet", "Type F Schuko"),
        ("IEC_62196_T2", "DOMESTIC_F"),
        "AC_1_PHASE",
        3.7,
        ("Mode_2", "Mode_3"),
        8,
    ),
    (("CCS Combo 2 Plug (Cable Attached)",), ("IEC_62196_T2_COMBO",), "DC", 150.0, ("Mode_4",), 12),
    (("CCS Combo 2 Plug (Cable Attached)",), ("IEC_62196_T2_COMBO",), "DC", 350.0, ("Mode_4",), 4),
    (
        ("CHAdeMO", "CCS Combo 2 Plug (Cable Attached)", "Type 2 Connector (Cable Attached)"),
        ("Chademo", "IEC_62196_T2_COMBO", "IEC_62196_T2"),
        "DC",
        50.0,
        ("Mode_4", "CHAdeMO"),
        10,
    ),
)
_AUTH = (
    ("RfidMifareDes", "Remote"),
    ("RfidMifareCls",),
    ("Iec15118", "RfidMifareDes", "Remote"),
    ("DirectCreditcard", "Remote"),
)
_PAYMENT = (("Contract",), ("Contract", "CreditCard"), ("Direct", "CreditCard"), ("Free",))
_ACCESS = (
    ("Free publicly accessible",) * 5 + ("Paying publicly accessible",) * 3 + ("Restricted access",)
)
_STATUS = (
    (Major.AVAILABLE, "available", 55),
    (Major.NOT_AVAILABLE, "charging", 25),
    (Major.NOT_AVAILABLE, "blocked", 4),
    (Major.NOT_AVAILABLE, "reserved", 3),
    (Major.NOT_AVAILABLE, "outoforder", 3),
    (Major.UNKNOWN, None, 10),
)
_DOC = (
    '<ev:record xmlns:ev="urn:gembus:evse:v1" xmlns:cmn="urn:gembus:common:v1">'
    "<ev:evseId>{evse}</ev:evseId><ev:operatorId>{op}</ev:operatorId>"
    "<ev:locationId>{loc}</ev:locationId><ev:locationNames><ev:name>{city} {loc}</ev:name>"
    "</ev:locationNames><ev:address><cmn:country>{cc}</cmn:country><cmn:city>{city}</cmn:city>"
    "<cmn:postalCode>{postal}</cmn:postalCode><cmn:street>{street}</cmn:street>"
    "<cmn:houseNumber>{house}</cmn:houseNumber></ev:address><ev:coordinates>"
    "<cmn:latitude>{lat:.6f}</cmn:latitude><cmn:longitude>{lon:.6f}</cmn:longitude>"
    "</ev:coordinates><ev:accessibility>{access}</ev:accessibility>"
    "<ev:connectors>{connectors}</ev:connectors><ev:plugs>{plugs}</ev:plugs>"
    "<ev:chargingFacilities>{facility}</ev:chargingFacilities>"
    "<ev:chargingModes>{modes}</ev:chargingModes><ev:authModes>{auth}</ev:authModes>"
    "<ev:paymentOptions>{payment}</ev:paymentOptions>{hours}"
    "<ev:staticStatus>Operative</ev:staticStatus><ev:reservable>{reservable}</ev:reservable>"
    "<ev:lastUpdate>{updated}</ev:lastUpdate></ev:record>"
)
_STREETS = (
    "Hauptstrasse",
    "Bahnhofstrasse",
    "Rue de la Gare",
    "High Street",
    "Via Roma",
    "Calle Mayor",
    "Marktplatz",
    "Kerkstraat",
)
_24_7 = (
    "<ev:openingTimes><ev:twentyfourseven>true</ev:twentyfourseven>"
    "<ev:closedCharging>false</ev:closedCharging></ev:openingTimes>"
)


@dataclass(frozen=True)
class Generated:
    record: EvseRecord
    status: EvseStatus


def _pick(rnd: random.Random, weighted: tuple[Any, ...]) -> Any:
    return rnd.choices(weighted, weights=[w[-1] for w in weighted])[0]


_City = tuple[str, str, float, float, float]


def _place(rnd: random.Random, cities: tuple[_City, ...]) -> tuple[_City, float, float]:
    """A city, and a point near it (85 %) or on the way to another city (15 %)."""
    city = rnd.choices(cities, weights=[c[4] for c in cities])[0]
    if rnd.random() < 0.15:
        other = rnd.choice(CITIES)
        t = rnd.random()
        return (
            city,
            city[2] + t * (other[2] - city[2]) + rnd.gauss(0, 0.05),
            city[3] + t * (other[3] - city[3]) + rnd.gauss(0, 0.05),
        )
    # Metro areas: Berlin's spread is ~15 km, which puts ~5,000 of 1,000,000 EVSEs within
    # 10 km of its centre (about what Berlin has today).
    sigma_km = 4.0 + 6.0 * math.sqrt(city[4])
    dlat = rnd.gauss(0, sigma_km) / 111.2
    dlon = rnd.gauss(0, sigma_km) / (111.32 * math.cos(math.radians(city[2])))
    return city, city[2] + dlat, city[3] + dlon


def generate(
    count: int,
    seed: int,
    now: datetime,
    operators: tuple[str, ...] = (),
    countries: tuple[str, ...] = (),
) -> Iterator[Generated]:
    """``count`` EVSEs, of synthetic operators per country or of ``operators`` (the demo
    ones), around every city or only those of ``countries``."""
    rnd = random.Random(seed)
    cities = tuple(c for c in CITIES if not countries or c[1] in countries)
    for n in range(count):
        city, lat, lon = _place(rnd, cities)
        cc = city[1]
        op = (
            operators[n % len(operators)]
            if operators
            else f"{cc}*{'ABCDEFGHIJ'[n % 10]}{'KLMNOPQRST'[(n // 10) % 10]}{n % 7}"
        )
        yield _one(rnd, n, op, city, lat, lon, now)


def _one(
    rnd: random.Random,
    n: int,
    op: str,
    city: tuple[str, str, float, float, float],
    lat: float,
    lon: float,
    now: datetime,
) -> Generated:
    swap = rnd.random() < 0.004
    plugs, connectors, ptype, kw, modes, _ = _pick(rnd, _KINDS)
    if swap:
        plugs, connectors, modes = (), (), ()
    auth, payment = rnd.choice(_AUTH), rnd.choice(_PAYMENT)
    access, reservable, always = rnd.choice(_ACCESS), rnd.random() < 0.3, rnd.random() < 0.7
    evse = EvseId.parse(f"{op}*E{n:07d}")
    loc = f"L{n // 3:07d}"
    facility = (
        "<ev:chargingFacility><ev:batteryExchange>true</ev:batteryExchange></ev:chargingFacility>"
        if swap
        else (
            "<ev:chargingFacility><ev:batteryExchange>false</ev:batteryExchange>"
            f"<ev:powerType>{ptype}</ev:powerType><ev:powerKw>{kw:g}</ev:powerKw>"
            "</ev:chargingFacility>"
        )
    )
    postal = f"{rnd.randrange(10000, 99999)}"
    street = rnd.choice(_STREETS)
    updated = now - timedelta(days=rnd.randrange(1, 900))
    document = _DOC.format(
        evse=evse.wire,
        op=op,
        loc=loc,
        city=city[0],
        cc=city[1],
        postal=postal,
        street=street,
        house=n % 200 + 1,
        lat=lat,
        lon=lon,
        access=access,
        connectors="".join(
            f"<ev:connector><ev:connectorStandard>{c}</ev:connectorStandard><ev:connectorFormat>Cable</ev:connectorFormat></ev:connector>"
            for c in connectors
        ),
        plugs="".join(f"<ev:plug>{p}</ev:plug>" for p in plugs),
        facility=facility,
        modes="".join(f"<ev:chargingMode>{m}</ev:chargingMode>" for m in modes),
        auth="".join(f"<ev:authMode>{a}</ev:authMode>" for a in auth),
        payment="".join(f"<ev:paymentOption>{p}</ev:paymentOption>" for p in payment),
        hours=_24_7 if always else "",
        reservable="true" if reservable else "false",
        updated=updated.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    # Empty lists are not allowed by the schema: drop the wrappers they would leave.
    for empty in (
        "<ev:connectors></ev:connectors>",
        "<ev:plugs></ev:plugs>",
        "<ev:chargingModes></ev:chargingModes>",
    ):
        document = document.replace(empty, "")
    record = EvseRecord(
        evse_id=evse,
        operator_id=OperatorId.parse(op),
        address=Address(city[1], city[0], postal, street, str(n % 200 + 1)),
        latitude=round(lat, 6),
        longitude=round(lon, 6),
        accessibility=access,
        facilities=(Facility(True),) if swap else (Facility(False, ptype, kw),),
        auth_modes=frozenset(auth),
        static_status="Operative",
        reservable=reservable,
        last_update=updated,
        document=document,
        plugs=frozenset(plugs),
        connectors=frozenset(connectors),
        charging_modes=frozenset(modes),
        payment_options=frozenset(payment),
        opening=OpeningTimes(True) if always else None,
    )
    major, minor, _ = _pick(rnd, _STATUS)
    return Generated(
        record, EvseStatus(major, minor, now + timedelta(minutes=rnd.randrange(5, 240)))
    )


def load(
    engine: Engine,
    items: Iterator[Generated],
    now: datetime,
    progress: Callable[[int], None],
    batch: int = 20_000,
) -> int:
    """Write the generated EVSEs (COPY on PostgreSQL), ``batch`` at a time; returns the count."""
    total, chunk = 0, list[Generated]()
    for item in items:
        chunk.append(item)
        if len(chunk) == batch:
            total += _write(engine, chunk, now)
            progress(len(chunk))
            chunk = []
    if chunk:
        total += _write(engine, chunk, now)
        progress(len(chunk))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE evse"))
            c.execute(text("ANALYZE evse_status"))
    return total


def _write(engine: Engine, chunk: list[Generated], now: datetime) -> int:
    rows = [projection(g.record, "upload", now) for g in chunk]
    docs = [{"evse_key": g.record.evse_id.key, "document": g.record.document} for g in chunk]
    statuses = [
        {
            "evse_key": g.record.evse_id.key,
            "major": g.status.major.value,
            "minor": g.status.minor,
            "ttl": g.status.ttl,
            "updated_at": now,
        }
        for g in chunk
    ]
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            cursor = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            for table, data in (("evse", rows), ("evse_document", docs), ("evse_status", statuses)):
                columns = list(data[0])
                copy_rows(cursor, table, columns, ([_copy(r[k]) for k in columns] for r in data))
        else:
            for target, values in ((EVSE, rows), (DOCUMENT, docs), (STATUS, statuses)):
                c.execute(insert(target), values)
    return len(chunk)


def _copy(value: Any) -> Any:
    """COPY's text format wants t/f for booleans."""
    if value is True:
        return "t"
    if value is False:
        return "f"
    return value


def now_utc() -> datetime:
    return datetime.now(UTC)
