"""gembus's CLM pull client against the data-serving fake CLM running as its own process.

Full, delta and status pulls walk every page over 127.0.0.1; each failure mode of the CLM
comes back as a :class:`ClmPullError` of the right kind and never as records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.clm_client import (
    ClmPullError,
    EvseMasterDataClient,
    EvseStatusClient,
    PullFailure,
    PullProgress,
)
from tests.e2e.conftest import free_port
from tests.fakes.clm_data import ClmDataProcess, start_clm_data_process

pytestmark = pytest.mark.e2e

EV = "{urn:gembus:evse:v1}"
MD = "{urn:gembus:evse-masterdata:v1}"
CMN = "{urn:gembus:common:v1}"
OPERATOR = "DE*ICE"


@pytest.fixture(scope="module")
def clm() -> Iterator[ClmDataProcess]:
    """2,500 EVSEs, pages of at most 1,000: the modes are reset after each test."""
    with start_clm_data_process(OPERATOR, evses=2500) as process:
        yield process


@pytest.fixture
def fresh_clm(tmp_path: Path) -> Iterator[ClmDataProcess]:
    """A small CLM of its own (pages of at most 50), for tests that change its data."""
    log = str(tmp_path / "requests.jsonl")
    with start_clm_data_process(OPERATOR, evses=120, max_page_size=50, log_path=log) as process:
        yield process


@pytest.fixture(autouse=True)
def _reset_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "clm" in request.fixturenames:
        process: ClmDataProcess = request.getfixturevalue("clm")
        if process.alive():
            process.set_mode("ok")


def evse_ids(records: list[object]) -> list[str]:
    return [r.findtext(f"{EV}evseId") or "" for r in records]  # type: ignore[attr-defined]


def test_full_pull_walks_every_page(clm: ClmDataProcess) -> None:
    progress: list[PullProgress] = []
    pull = EvseMasterDataClient(clm.masterdata_url).full_pull([OPERATOR], progress.append)
    records = list(pull)
    ids = evse_ids(records)
    assert len(ids) == 2500 and ids == sorted(set(ids))
    assert [(p.page, p.pages, p.received, p.total) for p in progress] == [
        (1, 3, 1000, 2500),
        (2, 3, 2000, 2500),
        (3, 3, 2500, 2500),
    ]
    assert pull.complete and pull.total == 2500 and pull.as_of is not None
    swaps = [
        r
        for r in records
        if r.findtext(f"{EV}chargingFacilities/{EV}chargingFacility/{EV}batteryExchange") == "true"
    ]
    assert swaps and all(r.find(f"{EV}connectors") is None for r in swaps)


def test_the_page_size_the_clm_uses_wins(fresh_clm: ClmDataProcess) -> None:
    progress: list[PullProgress] = []
    pull = EvseMasterDataClient(fresh_clm.masterdata_url, page_size=1000).full_pull(
        on_progress=progress.append
    )
    assert len(evse_ids(list(pull))) == 120
    assert [p.page for p in progress] == [1, 2, 3] and progress[-1].pages == 3
    asked = [r.body_child() for r in fresh_clm.received()]
    sizes = [a.findtext(f"{MD}paging/{CMN}pageSize") for a in asked if a is not None]
    snapshots = [a.findtext(f"{MD}snapshotAt") for a in asked if a is not None]
    assert sizes == ["1000", "50", "50"]
    assert snapshots[0] is None and snapshots[1] == snapshots[2] is not None


def test_delta_after_changes_returns_exactly_those(fresh_clm: ClmDataProcess) -> None:
    client = EvseMasterDataClient(fresh_clm.masterdata_url)
    full = client.full_pull()
    list(full)
    assert full.as_of is not None
    done = fresh_clm.change(
        update=["DE*ICE*E0000010", "DE*ICE*E0000011"], delete=["DE*ICE*E0000012"], insert=60
    )
    delta = client.delta_pull(full.as_of)
    changes = list(delta)
    assert delta.complete and delta.pages_read == 2  # 63 changes, pages of 50
    got = {(c.evse_id, c.delta_type) for c in changes}
    assert got == (
        {(i, "update") for i in done["updated"]}
        | {(i, "delete") for i in done["deleted"]}
        | {(i, "insert") for i in done["inserted"]}
    )
    assert [c.changed_at for c in changes] == sorted(c.changed_at for c in changes)
    for change in changes:
        if change.delta_type == "delete":
            assert change.evse is None
        else:
            assert change.evse is not None and change.evse.findtext(f"{EV}evseId") == change.evse_id
    assert delta.as_of is not None and delta.as_of >= max(c.changed_at for c in changes)
    empty = client.delta_pull(delta.as_of)
    assert list(empty) == [] and empty.complete and empty.total == 0


def test_status_pulls(fresh_clm: ClmDataProcess) -> None:
    client = EvseStatusClient(fresh_clm.status_url)
    everything = client.status_pull()
    statuses = list(everything)
    assert len(statuses) == 120 and everything.as_of is not None
    assert {s.major for s in statuses} <= {"available", "not-available", "unknown"}
    assert all(s.ttl is not None and s.ttl.tzinfo is not None for s in statuses)
    changed = ["DE*ICE*E0000005", "DE*ICE*E0000077"]
    fresh_clm.control(action="status", evseIds=changed)
    assert [s.evse_id for s in client.status_pull(since=everything.as_of)] == changed
    lookups = client.status_by_id(["DE*ICE*E0000077", "DE*ICE*E0999999"])
    assert [(x.evse_id, x.status is not None) for x in lookups] == [
        ("DE*ICE*E0000077", True),
        ("DE*ICE*E0999999", False),
    ]


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("garbage", PullFailure.NOT_XML),
        ("schema_invalid", PullFailure.SCHEMA_INVALID),
        ("http500", PullFailure.HTTP_ERROR),
        ("fault", PullFailure.FAULT),
    ],
)
def test_each_failure_mode_has_its_kind(clm: ClmDataProcess, mode: str, kind: PullFailure) -> None:
    clm.set_mode(mode)
    with pytest.raises(ClmPullError) as caught:
        list(EvseMasterDataClient(clm.masterdata_url).full_pull())
    assert caught.value.kind is kind and caught.value.page == 1
    with pytest.raises(ClmPullError) as status_caught:
        EvseStatusClient(clm.status_url).status_by_id(["DE*ICE*E0000001"])
    assert status_caught.value.kind is kind
    if mode == "fault":
        assert caught.value.fault_code == "Server.Unavailable"


def test_a_failure_mid_pull_stops_the_records(clm: ClmDataProcess) -> None:
    clm.set_mode("garbage", after=1)
    pull = EvseMasterDataClient(clm.masterdata_url).full_pull()
    received = []
    with pytest.raises(ClmPullError) as caught:
        for record in pull:
            received.append(record)
    assert (caught.value.kind, caught.value.page) == (PullFailure.NOT_XML, 2)
    assert len(received) == 1000 and not pull.complete


def test_a_clm_fault_comes_with_its_code(clm: ClmDataProcess) -> None:
    client = EvseMasterDataClient(clm.masterdata_url)
    with pytest.raises(ClmPullError) as caught:
        list(client.full_pull(["NL*XYZ"]))
    assert (caught.value.kind, caught.value.fault_code) == (
        PullFailure.FAULT,
        "Client.UnknownOperator",
    )
    with pytest.raises(ClmPullError) as too_old:
        list(client.delta_pull(datetime(2001, 1, 1, tzinfo=UTC)))
    assert too_old.value.fault_code == "Client.DeltaNotAvailable"


def test_a_change_during_a_full_read_expires_its_snapshot(fresh_clm: ClmDataProcess) -> None:
    records = iter(EvseMasterDataClient(fresh_clm.masterdata_url).full_pull())
    next(records)  # page 1 is read
    fresh_clm.change(update=["DE*ICE*E0000100"])
    with pytest.raises(ClmPullError) as caught:
        list(records)
    assert caught.value.fault_code == "Client.SnapshotExpired" and caught.value.page == 2


def test_a_slow_clm_times_out_within_the_bound(clm: ClmDataProcess) -> None:
    clm.set_mode("slow", delay_s=5)
    started = time.monotonic()
    with pytest.raises(ClmPullError) as caught:
        list(EvseMasterDataClient(clm.masterdata_url, timeout_s=1.0).full_pull())
    elapsed = time.monotonic() - started
    assert caught.value.kind is PullFailure.TIMEOUT
    assert 0.9 <= elapsed < 2.5


def test_a_clm_that_is_down_is_unreachable() -> None:
    nobody = f"http://127.0.0.1:{free_port()}/clm/evse_masterdata"
    with pytest.raises(ClmPullError) as caught:
        list(EvseMasterDataClient(nobody, timeout_s=2).full_pull())
    assert caught.value.kind is PullFailure.UNREACHABLE
    with start_clm_data_process(OPERATOR, evses=10) as process:
        url = process.masterdata_url
        assert len(list(EvseMasterDataClient(url).full_pull())) == 10
        process.kill()
    with pytest.raises(ClmPullError) as killed:
        list(EvseMasterDataClient(url, timeout_s=2).full_pull())
    assert killed.value.kind is PullFailure.UNREACHABLE
