"""Charging-domain rules without a database: status pairs and TTL, criteria checks, geometry,
opening hours."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

import pytest

from domain.charging.model import UNKNOWN, EvseStatus, Major, OpeningTimes, Period, ScheduledStatus
from domain.charging.opening import is_open_at
from domain.charging.search import (
    AddressCriteria,
    InvalidCriteriaError,
    Proximity,
    SearchQuery,
    Technical,
    bounding_box,
    cells_for,
    check_query,
    grid_cell,
    haversine_km,
)
from gembus.errors import InvalidPagingError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("major", "minor", "valid"),
    [
        ("unknown", None, True),
        ("available", "available", True),
        ("available", "reserved", True),
        ("available", "charging", False),
        ("not-available", "outoforder", True),
        ("not-available", "available", False),
        ("unknown", "charging", False),
        ("not-available", None, True),
    ],
)
def test_only_the_ochp_pairs_are_valid(major: str, minor: str | None, valid: bool) -> None:
    assert EvseStatus(Major(major), minor).valid_pair is valid


def test_a_status_reads_unknown_once_its_ttl_passed() -> None:
    status = EvseStatus(Major.AVAILABLE, "available", NOW + timedelta(minutes=5))
    assert status.effective(NOW) == status
    assert status.effective(NOW + timedelta(minutes=5)) == UNKNOWN
    assert EvseStatus(Major.AVAILABLE).effective(NOW + timedelta(days=999)).major is Major.AVAILABLE


@pytest.mark.parametrize(
    ("query", "fault", "field"),
    [
        (
            SearchQuery(proximity=Proximity(52.5, 13.4, 0.0)),
            InvalidCriteriaError,
            "proximity/radiusKm",
        ),
        (
            SearchQuery(proximity=Proximity(52.5, 13.4, 501.0)),
            InvalidCriteriaError,
            "proximity/radiusKm",
        ),
        (
            SearchQuery(proximity=Proximity(91.0, 13.4, 5.0)),
            InvalidCriteriaError,
            "proximity/center/latitude",
        ),
        (
            SearchQuery(proximity=Proximity(52.0, 181.0, 5.0)),
            InvalidCriteriaError,
            "proximity/center/longitude",
        ),
        (SearchQuery(page_size=201), InvalidPagingError, "paging/pageSize"),
        (SearchQuery(page=0), InvalidPagingError, "paging/page"),
        (SearchQuery(address=AddressCriteria()), InvalidCriteriaError, "address"),
        (
            SearchQuery(technical=Technical(plugs=frozenset({"Type 9"}))),
            InvalidCriteriaError,
            "technical/plugs/plug",
        ),
        (
            SearchQuery(technical=Technical(current="XC")),
            InvalidCriteriaError,
            "technical/currentType",
        ),
    ],
)
def test_impossible_criteria_name_their_field(
    query: SearchQuery, fault: type[Exception], field: str
) -> None:
    with pytest.raises(fault) as raised:
        check_query(query)
    assert getattr(raised.value, "field", None) == field


def test_haversine_against_known_distances() -> None:
    assert haversine_km(52.520008, 13.404954, 48.856613, 2.352222) == pytest.approx(878.0, abs=2)
    assert haversine_km(0, 179.9, 0, -179.9) == pytest.approx(22.24, abs=0.05)
    assert haversine_km(50, 8, 50, 8) == 0


@pytest.mark.parametrize("seed", range(5))
def test_the_grid_cells_cover_every_point_of_the_circle(seed: int) -> None:
    rnd = random.Random(seed)
    centre = Proximity(
        rnd.uniform(-60, 70), rnd.uniform(-179.9, 179.9), rnd.choice((1.0, 10.0, 40.0))
    )
    box = bounding_box(centre)
    cells = cells_for(box)
    assert cells is not None
    for _ in range(2000):
        lat = centre.latitude + rnd.uniform(-1, 1) * centre.radius_km / 111.0
        lon = centre.longitude + rnd.uniform(-1, 1) * centre.radius_km / 50.0
        lon = (lon + 180) % 360 - 180
        if haversine_km(centre.latitude, centre.longitude, lat, lon) <= centre.radius_km:
            assert grid_cell(lat, lon) in cells


def test_a_huge_radius_falls_back_to_the_bounding_box() -> None:
    assert cells_for(bounding_box(Proximity(50.0, 10.0, 500.0))) is None


HOURS = OpeningTimes(
    False,
    ((3, time(6, 0), time(14, 0)),),  # Wednesdays, local time
    exceptional_closings=(
        Period(datetime(2026, 12, 23, tzinfo=UTC), datetime(2026, 12, 27, tzinfo=UTC)),
    ),
)


def test_open_now_uses_the_evse_time_zone_and_exceptions() -> None:
    assert is_open_at(HOURS, (), "Operative", "Europe/Berlin", NOW)  # 13:00 in Berlin
    assert not is_open_at(HOURS, (), "Operative", "Asia/Tokyo", NOW)  # 21:00 in Tokyo
    assert not is_open_at(HOURS, (), "Operative", "Europe/Berlin", NOW + timedelta(hours=1))
    assert not is_open_at(
        HOURS,
        (),
        "Operative",
        "Europe/Berlin",
        datetime(2026, 12, 23, 11, tzinfo=UTC),  # a Wednesday, but closed
    )
    assert not is_open_at(None, (), "Operative", "Europe/Berlin", NOW)  # no hours: never
    works = (
        ScheduledStatus(Period(NOW - timedelta(hours=1), NOW + timedelta(hours=1)), "Inoperative"),
    )
    assert not is_open_at(OpeningTimes(True), works, "Operative", None, NOW)
    assert is_open_at(OpeningTimes(True), works, "Operative", None, NOW + timedelta(hours=2))
