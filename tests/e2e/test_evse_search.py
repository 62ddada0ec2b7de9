"""Charging domain end to end: operators upload and push over SOAP, partners search.

Real gunicorn on 127.0.0.1, zeep clients that validate every message against the canonical
XSD. Each criteria group (alone and combined) is checked against a brute-force filter of the
uploaded specs written out here, independent of the code under test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from zeep.exceptions import Fault

from tests.e2e.conftest import LiveServer
from tests.support.evse import Spec, distance_km, random_specs, zeep_record
from tests.support.zeep_validation import client

ICE = ("ice-charging", "demo-operator-password")
BMW = ("bmw-emobility", "demo-evsp2-password")
NAVI = ("navi-search", "demo-search-password")
USABLE = {"Operative", "Inoperative", "Planned"}  # staticStatuses absent


def key(evse_id: str) -> str:
    return evse_id.replace("*", "").upper()


@pytest.fixture(scope="module")
def specs(live_server: LiveServer) -> list[Spec]:
    """Both demo operators' data replaced by full loads of a known population."""
    population = random_specs(("DE*ICE", "DE*BMW"), 160, seed=11)
    for who, operator in ((ICE, "DE*ICE"), (BMW, "DE*BMW")):
        mine = [s for s in population if s.operator == operator]
        answer = client(live_server.base_url, "evse_upload", *who).UploadEvseData(
            operatorId=operator,
            actionType="fullLoad",
            evses={"evse": [zeep_record(s) for s in mine]},
        )
        assert answer.summary.rejected == 0 and answer.fullLoadCommitted
    return population


def search(live_server: LiveServer, **criteria: Any) -> Any:
    paging = criteria.pop("paging", {"page": 1, "pageSize": 200})
    return client(live_server.base_url, "evse_search", *NAVI).SearchEvse(paging=paging, **criteria)


Rule = Callable[[Spec], bool]
CENTRE = (52.520008, 13.404954)

CASES: dict[str, tuple[dict[str, Any], Rule]] = {
    "technical: plug": (
        {"technical": {"plugs": {"plug": ["CHAdeMO"]}}},
        lambda s: "CHAdeMO" in s.plugs,
    ),
    "technical: DC of at least 100 kW": (
        {"technical": {"currentType": "DC", "minPowerKw": "100"}},
        lambda s: not s.battery and s.power_type == "DC" and s.power_kw >= 100,
    ),
    "technical: battery swap": (
        {"technical": {"batteryExchange": True}},
        lambda s: s.battery,
    ),
    "technical: charging mode, reservable": (
        {"technical": {"chargingModes": {"chargingMode": ["Mode_4"]}, "reservable": True}},
        lambda s: "Mode_4" in s.modes and s.reservable,
    ),
    "operator: IDs and countries": (
        {"operator": {"operatorIds": {"operatorId": ["DE*BMW"]}, "countries": {"country": ["DE"]}}},
        lambda s: s.operator == "DE*BMW" and s.country == "DE",
    ),
    "management: auth, payment, 24/7": (
        {
            "management": {
                "authModes": {"authMode": ["Remote"]},
                "paymentOptions": {"paymentOption": ["Direct"]},
                "openTwentyFourSeven": True,
            }
        },
        lambda s: "Remote" in s.auth and "Direct" in s.payment and s.twentyfourseven,
    ),
    "management: accessibility, closed too": (
        {
            "management": {
                "accessibility": {"accessibility": ["Restricted access"]},
                "staticStatuses": {"staticStatus": ["Closed"]},
            }
        },
        lambda s: s.accessibility == "Restricted access" and s.static_status == "Closed",
    ),
    "address: city and street prefix": (
        {"address": {"city": "POTSDAM", "street": "Bahnhof"}},
        lambda s: s.city == "Potsdam" and s.street.startswith("Bahnhof"),
    ),
    "proximity: 10 km": (
        {
            "proximity": {
                "center": {"latitude": f"{CENTRE[0]:.6f}", "longitude": f"{CENTRE[1]:.6f}"},
                "radiusKm": "10",
            }
        },
        lambda s: distance_km(*CENTRE, s.lat, s.lon) <= 10,
    ),
    "combined: all five groups": (
        {
            "technical": {
                "plugs": {"plug": ["Type 2 Outlet", "CCS Combo 2 Plug (Cable Attached)"]}
            },
            "operator": {"countries": {"country": ["DE"]}},
            "management": {"authModes": {"authMode": ["RfidMifareDes", "Iec15118"]}},
            "address": {"country": "DE", "city": "Berlin"},
            "proximity": {
                "center": {"latitude": f"{CENTRE[0]:.6f}", "longitude": f"{CENTRE[1]:.6f}"},
                "radiusKm": "30",
            },
        },
        lambda s: (
            bool({"Type 2 Outlet", "CCS Combo 2 Plug (Cable Attached)"} & set(s.plugs))
            and s.country == "DE"
            and bool({"RfidMifareDes", "Iec15118"} & set(s.auth))
            and s.city == "Berlin"
            and distance_km(*CENTRE, s.lat, s.lon) <= 30
        ),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_criteria_group_matches_a_brute_force_filter(
    live_server: LiveServer, specs: list[Spec], case: str
) -> None:
    criteria, rule = CASES[case]
    listed = criteria.get("management", {}).get("staticStatuses", {}).get("staticStatus")
    usable = set(listed) if listed else USABLE
    expected = [s for s in specs if s.static_status in usable and rule(s)]
    if "proximity" in criteria:
        expected.sort(key=lambda s: (distance_km(*CENTRE, s.lat, s.lon), key(s.evse_id)))
    else:
        expected.sort(key=lambda s: (key(s.operator), key(s.evse_id)))
    answer = search(live_server, **criteria)
    assert answer.pageInfo.totalCount == len(expected) > 0
    assert [m.evse.evseId for m in answer.evseMatch] == [s.evse_id for s in expected]
    if "proximity" in criteria:
        for match, spec in zip(answer.evseMatch, expected, strict=True):
            assert float(match.distanceKm) == pytest.approx(
                distance_km(*CENTRE, spec.lat, spec.lon), abs=0.002
            )
    else:
        assert all(m.distanceKm is None for m in answer.evseMatch)


def test_pages_cut_the_same_order(live_server: LiveServer, specs: list[Spec]) -> None:
    whole = [m.evse.evseId for m in search(live_server).evseMatch]
    second = search(live_server, paging={"page": 2, "pageSize": 7})
    assert [m.evse.evseId for m in second.evseMatch] == whole[7:14]
    assert second.pageInfo.totalCount == len(whole)


def test_battery_swap_station_near_a_point(live_server: LiveServer, specs: list[Spec]) -> None:
    answer = search(
        live_server,
        technical={"batteryExchange": True},
        proximity=CASES["proximity: 10 km"][0]["proximity"],
    )
    assert answer.evseMatch and all(
        m.evse.chargingFacilities.chargingFacility[0].batteryExchange for m in answer.evseMatch
    )
    assert all(not m.evse.connectors for m in answer.evseMatch)


def test_impossible_criteria_are_client_faults(live_server: LiveServer) -> None:
    with pytest.raises(Fault) as empty_address:
        search(live_server, address={})
    assert empty_address.value.detail is not None and "Client.InvalidCriteria" in _code(
        empty_address.value
    )
    with pytest.raises(Fault) as big_page:
        search(live_server, paging={"page": 1, "pageSize": 500})
    assert "Client.InvalidPaging" in _code(big_page.value)


def _code(fault: Fault) -> str:
    return "".join(fault.detail.itertext()) if fault.detail is not None else ""


def test_an_operator_uploading_another_operators_evse_is_rejected_per_record(
    live_server: LiveServer, specs: list[Spec]
) -> None:
    theirs = Spec("DE*BMW*E7777", "DE*BMW", 52.5, 13.4)
    ours = Spec("DE*ICE*E7777", "DE*ICE", 52.5, 13.4)
    answer = client(live_server.base_url, "evse_upload", *ICE).UploadEvseData(
        operatorId="DE*ICE",
        actionType="insert",
        evses={"evse": [zeep_record(theirs), zeep_record(ours)]},
    )
    assert [(r.evseId, r.result, r.reason) for r in answer.recordResult] == [
        ("DE*BMW*E7777", "rejected", "EvseInconsistent"),
        ("DE*ICE*E7777", "accepted", None),
    ]
    with pytest.raises(Fault) as mismatch:
        client(live_server.base_url, "evse_upload", *ICE).UploadEvseData(
            operatorId="DE*BMW", actionType="insert", evses={"evse": [zeep_record(theirs)]}
        )
    assert "Client.CallerMismatch" in _code(mismatch.value)
    client(live_server.base_url, "evse_upload", *ICE).UploadEvseData(
        operatorId="DE*ICE", actionType="delete", evseIds={"evseId": ["DE*ICE*E7777"]}
    )


def test_a_full_load_replaces_the_operators_set(live_server: LiveServer, specs: list[Spec]) -> None:
    bmw = [s for s in specs if s.operator == "DE*BMW"]
    keep, moved = bmw[:-1], replace(bmw[-1], evse_id="DE*BMW*E99999")
    uploader = client(live_server.base_url, "evse_upload", *BMW)
    answer = uploader.UploadEvseData(
        operatorId="DE*BMW",
        actionType="fullLoad",
        evses={"evse": [zeep_record(s) for s in [*keep, moved]]},
    )
    assert answer.deletedByFullLoad == 1
    found = search(
        live_server,
        operator={"operatorIds": {"operatorId": ["DE*BMW"]}},
        management={"staticStatuses": {"staticStatus": ["Operative", "Inoperative", "Closed"]}},
    )
    assert {m.evse.evseId for m in found.evseMatch} == {s.evse_id for s in [*keep, moved]}
    uploader.UploadEvseData(
        operatorId="DE*BMW", actionType="fullLoad", evses={"evse": [zeep_record(s) for s in bmw]}
    )


def test_status_push_then_ttl_expiry_reads_unknown(
    live_server: LiveServer, specs: list[Spec]
) -> None:
    evse = next(s for s in specs if s.operator == "DE*ICE").evse_id
    ttl = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    pushed = client(live_server.base_url, "evse_status_push", *ICE).PushEvseStatus(
        operatorId="DE*ICE",
        evseStatus=[{"evseId": evse, "major": "available", "minor": "available", "ttl": ttl}],
    )
    assert pushed.summary.accepted == 1
    reader = client(live_server.base_url, "evse_search", *NAVI)
    assert reader.GetEvseStatusById(evseId=[evse])[0].status.major == "available"
    available = search(live_server, management={"availableNow": True})
    assert evse in {m.evse.evseId for m in available.evseMatch}
    time.sleep(max(0.0, (ttl - datetime.now(UTC)).total_seconds()) + 0.5)
    status = reader.GetEvseStatusById(evseId=[evse, "DE*ICE*E404"])
    assert [(s.result, s.status.major if s.status else None) for s in status] == [
        ("found", "unknown"),
        ("notFound", None),
    ]
    assert evse not in {
        m.evse.evseId for m in search(live_server, management={"availableNow": True}).evseMatch
    }
    looked_up = reader.GetEvse(evseId=[evse])[0]
    assert looked_up.result == "found" and looked_up.status.major == "unknown"
