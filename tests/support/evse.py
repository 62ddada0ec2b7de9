"""EVSE records for the charging tests: one spec, rendered as XML (integration) or as a zeep
dict (e2e), and a deliberately plain brute-force filter to check Search EVSE against."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

EV = "urn:gembus:evse:v1"
CMN = "urn:gembus:common:v1"
LAST_UPDATE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Spec:
    evse_id: str
    operator: str
    lat: float
    lon: float
    city: str = "Berlin"
    country: str = "DE"
    postal_code: str = "10178"
    street: str = "Alexanderstrasse"
    plugs: tuple[str, ...] = ("Type 2 Outlet",)
    connectors: tuple[str, ...] = ("IEC_62196_T2",)
    power_type: str = "AC_3_PHASE"
    power_kw: float = 22.0
    battery: bool = False
    modes: tuple[str, ...] = ("Mode_3",)
    auth: tuple[str, ...] = ("RfidMifareDes",)
    payment: tuple[str, ...] = ("Contract",)
    accessibility: str = "Free publicly accessible"
    twentyfourseven: bool = True
    static_status: str = "Operative"
    reservable: bool = False
    last_update: datetime = field(default=LAST_UPDATE)


def facility_xml(s: Spec) -> str:
    if s.battery:
        return "<ev:chargingFacility><ev:batteryExchange>true</ev:batteryExchange></ev:chargingFacility>"
    return (
        "<ev:chargingFacility><ev:batteryExchange>false</ev:batteryExchange>"
        f"<ev:powerType>{s.power_type}</ev:powerType><ev:powerKw>{s.power_kw:g}</ev:powerKw>"
        "</ev:chargingFacility>"
    )


def _list(wrapper: str, item: str, values: tuple[str, ...]) -> str:
    if not values:
        return ""
    inner = "".join(f"<ev:{item}>{escape(v)}</ev:{item}>" for v in values)
    return f"<ev:{wrapper}>{inner}</ev:{wrapper}>"


def record_xml(s: Spec, tag: str = "u:evse") -> str:
    """The record as an element named ``tag`` (prefixes u/ev/cmn declared by the caller)."""
    connectors = "".join(
        f"<ev:connector><ev:connectorStandard>{c}</ev:connectorStandard>"
        "<ev:connectorFormat>Cable</ev:connectorFormat></ev:connector>"
        for c in s.connectors
    )
    hours = (
        "<ev:openingTimes><ev:twentyfourseven>true</ev:twentyfourseven>"
        "<ev:closedCharging>false</ev:closedCharging></ev:openingTimes>"
        if s.twentyfourseven
        else ""
    )
    return (
        f"<{tag}><ev:evseId>{s.evse_id}</ev:evseId><ev:operatorId>{s.operator}</ev:operatorId>"
        f"<ev:locationId>L1</ev:locationId><ev:locationNames><ev:name>Site</ev:name></ev:locationNames>"
        f"<ev:address><cmn:country>{s.country}</cmn:country><cmn:city>{s.city}</cmn:city>"
        f"<cmn:postalCode>{s.postal_code}</cmn:postalCode><cmn:street>{s.street}</cmn:street>"
        "<cmn:timeZone>Europe/Berlin</cmn:timeZone></ev:address>"
        f"<ev:coordinates><cmn:latitude>{s.lat:.6f}</cmn:latitude>"
        f"<cmn:longitude>{s.lon:.6f}</cmn:longitude></ev:coordinates>"
        f"<ev:accessibility>{s.accessibility}</ev:accessibility>"
        + (f"<ev:connectors>{connectors}</ev:connectors>" if connectors else "")
        + _list("plugs", "plug", s.plugs)
        + f"<ev:chargingFacilities>{facility_xml(s)}</ev:chargingFacilities>"
        + _list("chargingModes", "chargingMode", s.modes)
        + _list("authModes", "authMode", s.auth)
        + _list("paymentOptions", "paymentOption", s.payment)
        + hours
        + f"<ev:staticStatus>{s.static_status}</ev:staticStatus>"
        + f"<ev:reservable>{'true' if s.reservable else 'false'}</ev:reservable>"
        + f"<ev:lastUpdate>{s.last_update.isoformat().replace('+00:00', 'Z')}</ev:lastUpdate>"
        + f"</{tag.split()[0]}>"
    )


def zeep_record(s: Spec) -> dict[str, Any]:
    """The same record as a zeep value of evse:EvseRecordType."""
    facility: dict[str, Any] = {"batteryExchange": s.battery}
    if not s.battery:
        facility |= {"powerType": s.power_type, "powerKw": f"{s.power_kw:g}"}
    record: dict[str, Any] = {
        "evseId": s.evse_id,
        "operatorId": s.operator,
        "locationId": "L1",
        "locationNames": {"name": [{"_value_1": "Site"}]},
        "address": {
            "country": s.country,
            "city": s.city,
            "postalCode": s.postal_code,
            "street": s.street,
            "timeZone": "Europe/Berlin",
        },
        "coordinates": {"latitude": f"{s.lat:.6f}", "longitude": f"{s.lon:.6f}"},
        "accessibility": s.accessibility,
        "chargingFacilities": {"chargingFacility": [facility]},
        "authModes": {"authMode": list(s.auth)},
        "staticStatus": s.static_status,
        "reservable": s.reservable,
        "lastUpdate": s.last_update,
    }
    if s.connectors:
        record["connectors"] = {
            "connector": [
                {"connectorStandard": c, "connectorFormat": "Cable"} for c in s.connectors
            ]
        }
    if s.plugs:
        record["plugs"] = {"plug": list(s.plugs)}
    if s.modes:
        record["chargingModes"] = {"chargingMode": list(s.modes)}
    if s.payment:
        record["paymentOptions"] = {"paymentOption": list(s.payment)}
    if s.twentyfourseven:
        record["openingTimes"] = {"twentyfourseven": True, "closedCharging": False}
    return record


PLUG_SETS = (
    (("Type 2 Outlet",), ("IEC_62196_T2",), "AC_3_PHASE", 22.0, ("Mode_3",)),
    (("Type 2 Outlet",), ("IEC_62196_T2",), "AC_1_PHASE", 3.7, ("Mode_3",)),
    (("CCS Combo 2 Plug (Cable Attached)",), ("IEC_62196_T2_COMBO",), "DC", 150.0, ("Mode_4",)),
    (
        ("CHAdeMO", "CCS Combo 2 Plug (Cable Attached)"),
        ("Chademo", "IEC_62196_T2_COMBO"),
        "DC",
        50.0,
        ("Mode_4", "CHAdeMO"),
    ),
)
CITIES = (
    ("Berlin", "DE", "10178", 52.520008, 13.404954),
    ("Potsdam", "DE", "14467", 52.390569, 13.064473),
    ("Szczecin", "PL", "70-001", 53.428543, 14.552812),
)


def random_specs(operators: tuple[str, ...], count: int, seed: int = 7) -> list[Spec]:
    """A small varied population around three cities; every fifth site is a battery swap."""
    rnd = random.Random(seed)
    specs = []
    for n in range(count):
        city, country, postal, lat, lon = rnd.choice(CITIES)
        plugs, connectors, ptype, power, modes = rnd.choice(PLUG_SETS)
        operator = operators[n % len(operators)]
        spec = Spec(
            f"{operator}*E{n:05d}",
            operator,
            lat + rnd.uniform(-0.25, 0.25),
            lon + rnd.uniform(-0.35, 0.35),
            city=city,
            country=country,
            postal_code=postal,
            street=rnd.choice(("Hauptstrasse", "Bahnhofstrasse", "Marktplatz")),
            plugs=plugs,
            connectors=connectors,
            power_type=ptype,
            power_kw=power,
            modes=modes,
            auth=rnd.choice((("RfidMifareDes",), ("Remote", "Iec15118"), ("DirectCreditcard",))),
            payment=rnd.choice((("Contract",), ("CreditCard", "Direct"), ())),
            accessibility=rnd.choice(
                ("Free publicly accessible", "Paying publicly accessible", "Restricted access")
            ),
            twentyfourseven=rnd.random() < 0.6,
            static_status=rnd.choice(
                ("Operative", "Operative", "Operative", "Inoperative", "Closed")
            ),
            reservable=rnd.random() < 0.3,
        )
        if n % 5 == 0:
            spec = replace(spec, battery=True, plugs=(), connectors=(), modes=(), power_kw=0.0)
        specs.append(spec)
    return specs


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine again, written out here so the test does not trust the code under test."""
    r = 6371.0088
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * r * math.asin(math.sqrt(a))
