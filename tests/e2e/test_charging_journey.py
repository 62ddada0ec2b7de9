"""The charging domain as one partner lives it: an operator's CLM is pulled, an EVSP finds a
CCS charger and a battery-swap station near a point with every criteria group, on that pulled
data with its live status, and reserves the charger at the operator's CLM.

Everything runs as it does in production: the operator (DE*JRN) registers on the marketplace
over SOAP and publishes its CLM's three services (master data and live status on the
data-serving fake, :mod:`tests.fakes.clm_data`; reservation on :mod:`tests.fakes.clm`), both
fakes real spyne processes; ``gembus evse pull`` pulls them; the EVSP (tnm-mobility) uses zeep
clients that validate every message against the canonical XSD. The expected matches are a
brute-force filter of the CLM's own records, read from the same deterministic generator with
lxml, not through gembus.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import (
    LiveServer,
    forget_evses,
    offer_reservation_service,
    publish_clm_data,
    register_operator,
    run_cli,
)
from tests.fakes.clm import ClmProcess, start_clm_process
from tests.fakes.clm_data import CITIES, ClmDataState, start_clm_data_process
from tests.support.evse import distance_km
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

OPERATOR, PARTNER = "DE*JRN", "journey-cpo"
EVSES, SEED = 2000, 7  # ~250 EVSEs around each of the fake's eight cities
TNM = ("tnm-mobility", "demo-evsp-password")
CONTRACT_ID = "NL-TNM-000122045-U"
CCS = "CCS Combo 2 Plug (Cable Attached)"
EV = "{urn:gembus:evse:v1}"
CMN = "{urn:gembus:common:v1}"


@dataclass(frozen=True)
class Record:
    """What the brute-force filter needs of one of the CLM's records, read with lxml."""

    evse_id: str
    plugs: frozenset[str]
    battery: bool
    reservable: bool
    country: str
    city: str
    lat: float
    lon: float
    available: bool


def clm_records() -> list[Record]:
    """The CLM's records and live statuses, from the fake's generator in this process (the
    same operator and seed give the same records and statuses as the fake process serves)."""
    state = ClmDataState(OPERATOR, EVSES, seed=SEED)
    records = []
    for element, (evse_id, evse) in zip(
        state.render(state.evses.values()), state.evses.items(), strict=True
    ):
        assert element.findtext(f"{EV}evseId") == evse_id
        records.append(
            Record(
                evse_id=evse_id,
                plugs=frozenset(p.text or "" for p in element.iter(f"{EV}plug")),
                battery=element.find(f".//{EV}batteryExchange").text == "true",  # type: ignore[union-attr]
                reservable=element.findtext(f"{EV}reservable") == "true",
                country=element.findtext(f"{EV}address/{CMN}country") or "",
                city=element.findtext(f"{EV}address/{CMN}city") or "",
                lat=float(element.findtext(f"{EV}coordinates/{CMN}latitude") or "nan"),
                lon=float(element.findtext(f"{EV}coordinates/{CMN}longitude") or "nan"),
                available=state.statuses[evse_id].major == "available",
            )
        )
        assert evse.version == 0
    return records


@dataclass
class Journey:
    reservations: ClmProcess
    records: list[Record]


@pytest.fixture(scope="module")
def journey(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    logs = tmp_path_factory.mktemp("journey")
    with start_clm_data_process(
        OPERATOR, evses=EVSES, seed=SEED, max_page_size=500, log_path=str(logs / "data.jsonl")
    ) as data:
        reservations = start_clm_process(OPERATOR, log_path=logs / "reservations.jsonl")
        try:
            password = register_operator(live_server, PARTNER, OPERATOR)
            publish_clm_data(live_server, PARTNER, password, data)
            offer_reservation_service(live_server, PARTNER, password, reservations.url)
            client(live_server.base_url, "marketplace", PARTNER, password).CreateRoamingAgreement(
                operatorId=OPERATOR,
                providerId="NL-TNM",
                validity={"validFrom": datetime.now(UTC) - timedelta(minutes=1)},
            )
            for extra in ((), ("--status",)):
                pulled = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR, *extra)
                assert pulled.returncode == 0, pulled.stdout + pulled.stderr
            yield Journey(reservations, clm_records())
        finally:
            reservations.kill()
            forget_evses(live_server, OPERATOR)


def point(city: str) -> tuple[float, float]:
    return next((lat, lon) for name, lat, lon, _ in CITIES if name == city)


def search(server: LiveServer, **criteria: Any) -> list[Any]:
    """Every match, page by page (pages of 20), as the EVSP reads them."""
    service = client(server.base_url, "evse_search", *TNM)
    matches: list[Any] = []
    page, total = 1, None
    while total is None or len(matches) < total:
        answer = service.SearchEvse(paging={"page": page, "pageSize": 20}, **criteria)
        total = answer.pageInfo.totalCount
        matches += answer.evseMatch or []
        assert answer.evseMatch or len(matches) == total
        page += 1
    return matches


def expect(journey: Journey, rule: Callable[[Record], bool]) -> set[str]:
    return {r.evse_id for r in journey.records if rule(r)}


def proximity(city: str, radius_km: int) -> dict[str, Any]:
    lat, lon = point(city)
    return {
        "center": {"latitude": f"{lat:.6f}", "longitude": f"{lon:.6f}"},
        "radiusKm": str(radius_km),
    }


def checked_by_distance(matches: list[Any], city: str) -> None:
    """The distances gembus returned, checked against haversine written out in the test."""
    lat, lon = point(city)
    distances = [float(m.distanceKm) for m in matches]
    assert distances == sorted(distances)
    for match, distance in zip(matches, distances, strict=True):
        c = match.evse.coordinates
        assert abs(distance_km(lat, lon, float(c.latitude), float(c.longitude)) - distance) < 0.01


def test_an_evsp_finds_an_available_reservable_ccs_charger_with_all_five_groups(
    live_server: LiveServer, journey: Journey
) -> None:
    lat, lon = point("Berlin")
    matches = search(
        live_server,
        technical={"plugs": {"plug": [CCS]}, "reservable": True},
        operator={"operatorIds": {"operatorId": [OPERATOR]}},
        management={"availableNow": True},
        address={"country": "DE", "city": "Berlin"},
        proximity=proximity("Berlin", 12),
    )
    wanted = expect(
        journey,
        lambda r: (
            CCS in r.plugs
            and r.reservable
            and r.available
            and (r.country, r.city) == ("DE", "Berlin")
            and distance_km(lat, lon, r.lat, r.lon) <= 12
        ),
    )
    assert len(wanted) >= 3  # the generator's data gives a handful; zero would prove nothing
    assert {m.evse.evseId for m in matches} == wanted
    assert all(m.status.major == "available" for m in matches)
    checked_by_distance(matches, "Berlin")


def test_an_evsp_finds_a_battery_swap_station_near_a_point(
    live_server: LiveServer, journey: Journey
) -> None:
    lat, lon = point("Hamburg")
    matches = search(
        live_server,
        technical={"batteryExchange": True},
        operator={"operatorIds": {"operatorId": [OPERATOR]}},
        proximity=proximity("Hamburg", 15),
    )
    wanted = expect(journey, lambda r: r.battery and distance_km(lat, lon, r.lat, r.lon) <= 15)
    assert len(wanted) >= 3
    assert {m.evse.evseId for m in matches} == wanted
    assert all(m.evse.maxCapacityKwh is not None for m in matches)
    checked_by_distance(matches, "Hamburg")


def test_the_evsp_reserves_the_nearest_charger_it_found_at_the_operators_clm(
    live_server: LiveServer, journey: Journey
) -> None:
    (nearest, *_) = search(
        live_server,
        technical={"plugs": {"plug": [CCS]}, "reservable": True},
        operator={"operatorIds": {"operatorId": [OPERATOR]}},
        management={"availableNow": True},
        proximity=proximity("Muenchen", 20),
    )
    evse_id = nearest.evse.evseId
    reference = f"TNM-{uuid.uuid4().hex[:12]}"
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=25)
    reservation = client(live_server.base_url, "reservation", *TNM)
    held = reservation.ReserveEvse(
        providerId="NL-TNM",
        contractId=CONTRACT_ID,
        evseId=evse_id,
        partnerReservationId=reference,
        requestedExpiry=expiry,
    )
    assert held.reservationId.startswith("DEJRN-R") and held.evseId == evse_id
    assert held.partnerReservationId == reference and held.expiry == expiry
    asked = [r for r in journey.reservations.received() if r.operation == "ReserveEvse"]
    sent = asked[-1].body_child()
    assert sent is not None
    assert sent.findtext("{urn:gembus:reservation:v1}evseId") == evse_id
    listed = run_cli(live_server.env, "reservation", "list", "--evsp", "tnm-mobility")
    assert listed.returncode == 0
    assert any(held.reservationId in line and "held" in line for line in listed.stdout.splitlines())
    cancelled = reservation.CancelReservation(
        providerId="NL-TNM", evseId=evse_id, reservationId=held.reservationId
    )
    assert (cancelled.reservationId, cancelled.evseId) == (held.reservationId, evse_id)
    assert [r.operation for r in journey.reservations.received()][-1] == "CancelReservation"
