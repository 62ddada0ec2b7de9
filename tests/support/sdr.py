"""Build SubmitSdrs records as the operators' systems would send them (tests, bench, demo).

``record(...)`` renders one ``s:sdr`` element with the prefixes of the SubmitSdrs fixture
(``rm`` roaming, ``cmn`` common); the defaults make a plausible 30-minute charging session,
started an hour ago, of the demo operator ICE Charging (DE*ICE) for a customer of The New
Motion (NL-TNM). Every argument can be overridden to break one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

SDR_NS = "urn:gembus:sdr:v1"
ROAMING_NS = "urn:gembus:roaming:v1"
COMMON_NS = "urn:gembus:common:v1"
SUBMIT_ACTION = f"{SDR_NS}/SubmitSdrs"
TNM_CONTRACT = "NL-TNM-000122045-U"
BMW_CONTRACT = "DE*BMW*0010LY*3"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    item: str = "energy"
    value: str = "21.340"
    price: str = "0.3500"
    cost: str | None = "7.4690"


def local(value: datetime) -> str:
    """rm:LocalDateTimeType: seconds and an explicit offset (+01:00 here, never Z)."""
    return value.astimezone(UTC).astimezone(_CET).replace(microsecond=0).isoformat()


_CET = timezone(timedelta(hours=1))


def record(
    sdr_id: str,
    *,
    start: datetime | None = None,
    minutes: int = 30,
    contract: str = TNM_CONTRACT,
    evse: str = "DE*ICE*E123456*7",
    status: str = "new",
    service_type: str | None = None,
    periods: list[Period] | None = None,
    total: str | None = "default",
    currency: str = "EUR",
    duration: str | None = "default",
    meter_id: str = "EMH-ED300L-0815",
) -> str:
    start = (start or datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    end = start + timedelta(minutes=minutes)
    if periods is None:
        periods = [
            Period(start, end),
            Period(start, end, "serviceFee", "1.0", "1.5000", "1.5000"),
        ]
    if total == "default":
        total = str(sum((Decimal(p.cost or "0") for p in periods), Decimal(0)))
    if duration == "default":
        duration = f"{minutes // 60:03d}:{minutes % 60:02d}:00"
    parts = [
        f"<s:sdr><rm:sdrId>{sdr_id}</rm:sdrId>",
        f"<rm:serviceType>{service_type}</rm:serviceType>" if service_type else "",
        f"<rm:evseId>{evse}</rm:evseId>",
        "<rm:token><cmn:instance>4F2A19C3</cmn:instance><cmn:tokenType>rfid</cmn:tokenType>"
        "</rm:token>",
        f"<rm:contractId>{contract}</rm:contractId><rm:status>{status}</rm:status>",
        f"<rm:startDateTime>{local(start)}</rm:startDateTime>",
        f"<rm:endDateTime>{local(end)}</rm:endDateTime>",
        f"<rm:duration>{duration}</rm:duration>" if duration else "",
        "<rm:chargePointAddress><cmn:country>DE</cmn:country><cmn:city>Berlin</cmn:city>"
        "<cmn:street>Invalidenstrasse</cmn:street></rm:chargePointAddress>",
        "<rm:chargePointType>AC</rm:chargePointType><rm:connectorType>"
        "<rm:connectorStandard>IEC_62196_T2</rm:connectorStandard>"
        "<rm:connectorFormat>Socket</rm:connectorFormat></rm:connectorType>",
        f"<rm:meterId>{meter_id}</rm:meterId><rm:chargingPeriods>",
        "".join(_period(p) for p in periods),
        "</rm:chargingPeriods>",
        f"<rm:totalCost>{total}</rm:totalCost>" if total is not None else "",
        f"<rm:currency>{currency}</rm:currency></s:sdr>",
    ]
    return "".join(parts)


def _period(p: Period) -> str:
    cost = f"<rm:periodCost>{p.cost}</rm:periodCost>" if p.cost is not None else ""
    return (
        f"<rm:chargingPeriod><rm:startDateTime>{local(p.start)}</rm:startDateTime>"
        f"<rm:endDateTime>{local(p.end)}</rm:endDateTime><rm:billingItem>{p.item}</rm:billingItem>"
        f"<rm:billingValue>{p.value}</rm:billingValue><rm:itemPrice>{p.price}</rm:itemPrice>"
        f"{cost}</rm:chargingPeriod>"
    )


def submit_body(records: list[str], operator_id: str = "DE*ICE") -> str:
    """The SubmitSdrs Body child."""
    return (
        f'<s:SubmitSdrs xmlns:s="{SDR_NS}" xmlns:rm="{ROAMING_NS}" xmlns:cmn="{COMMON_NS}">'
        f"<s:operatorId>{operator_id}</s:operatorId><s:sdrs>{''.join(records)}</s:sdrs>"
        "</s:SubmitSdrs>"
    )


def fields(
    sdr_id: str,
    *,
    start: datetime | None = None,
    minutes: int = 30,
    contract: str = TNM_CONTRACT,
    evse: str = "DE*ICE*E123456*7",
    status: str = "new",
    currency: str = "EUR",
    meter_id: str = "EMH-ED300L-0815",
    total: str = "8.9690",
) -> dict[str, object]:
    """The same record as :func:`record`, as the dict a zeep client sends."""
    start = (start or datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    end = start + timedelta(minutes=minutes)
    periods = [Period(start, end), Period(start, end, "serviceFee", "1.0", "1.5000", "1.5000")]
    return {
        "sdrId": sdr_id,
        "evseId": evse,
        "token": {"instance": "4F2A19C3", "tokenType": "rfid"},
        "contractId": contract,
        "status": status,
        "startDateTime": local(start),
        "endDateTime": local(end),
        "duration": f"{minutes // 60:03d}:{minutes % 60:02d}:00",
        "chargePointAddress": {"country": "DE", "city": "Berlin", "street": "Invalidenstrasse"},
        "chargePointType": "AC",
        "connectorType": {"connectorStandard": "IEC_62196_T2", "connectorFormat": "Socket"},
        "meterId": meter_id,
        "chargingPeriods": {
            "chargingPeriod": [
                {
                    "startDateTime": local(p.start),
                    "endDateTime": local(p.end),
                    "billingItem": p.item,
                    "billingValue": Decimal(p.value),
                    "itemPrice": Decimal(p.price),
                    "periodCost": Decimal(p.cost or "0"),
                }
                for p in periods
            ]
        },
        "totalCost": Decimal(total),
        "currency": currency,
    }
