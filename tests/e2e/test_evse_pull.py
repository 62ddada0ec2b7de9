"""Pulls from an operator's CLM end to end: the fake CLM as its own process, gembus's CLI and
workers as the user runs them, the results read back through the real server over SOAP.

An operator (DE*PUL) registers on the marketplace and publishes its CLM's two services
(ProvideEVSE-MasterData, ProvideEVSEStatusData) at the fake's endpoints, whose WSDLs gembus
checks at registration; ``gembus evse pull`` finds them there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.clm_client import EvseStatusClient
from tests.conftest import REPO
from tests.e2e.conftest import (
    LiveServer,
    forget_evses,
    gembus_cli,
    publish_clm_data,
    register_operator,
    run_cli,
)
from tests.fakes.clm_data import (
    MASTERDATA_PATH,
    ClmDataProcess,
    make_clm_data_app,
    start_clm_data_process,
)
from tests.fakes.common import read_log, serve
from tests.support.databases import fresh_postgres_database
from tests.support.marketplace import partner, published_clm
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

OPERATOR, PARTNER = "DE*PUL", "pull-charging"
NAVI = ("navi-search", "demo-search-password")
TNM = ("tnm-mobility", "demo-evsp-password")


@pytest.fixture(scope="module")
def clm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClmDataProcess]:
    log = str(tmp_path_factory.mktemp("clm") / "requests.jsonl")
    with start_clm_data_process(OPERATOR, evses=120, max_page_size=50, log_path=log) as process:
        yield process


@pytest.fixture(scope="module")
def operator(live_server: LiveServer, clm: ClmDataProcess) -> Iterator[str]:
    password = register_operator(live_server, PARTNER, OPERATOR)
    publish_clm_data(live_server, PARTNER, password, clm)
    yield password
    forget_evses(live_server, OPERATOR)  # the search tests compare every EVSE stored


def searched(server: LiveServer) -> dict[str, Any]:
    """The operator's EVSEs as SearchEvse answers them: evseId -> lastUpdate."""
    answer = client(server.base_url, "evse_search", *NAVI).SearchEvse(
        operator={"operatorIds": {"operatorId": [OPERATOR]}}, paging={"page": 1, "pageSize": 200}
    )
    assert answer.pageInfo.totalCount == len(answer.evseMatch or [])
    return {m.evse.evseId: m.evse.lastUpdate for m in answer.evseMatch or []}


def test_gembus_evse_pull_stores_the_full_set_then_deltas(
    live_server: LiveServer, operator: str, clm: ClmDataProcess
) -> None:
    full = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR)
    assert full.returncode == 0, full.stderr
    assert "DE*PUL full pull ok in" in full.stdout
    assert "120 received, 120 stored, 0 deleted, 0 rejected" in full.stdout
    assert "pulling DE*PUL" in full.stderr  # the progress bar
    assert len(searched(live_server)) == 120
    done = clm.change(update=["DE*PUL*E0000010"], delete=["DE*PUL*E0000011"], insert=3)
    delta = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR)
    assert delta.returncode == 0, delta.stderr
    assert "DE*PUL delta pull ok in" in delta.stdout
    assert "5 received, 4 stored, 1 deleted, 0 rejected" in delta.stdout
    found = searched(live_server)
    assert len(found) == 122 and "DE*PUL*E0000011" not in found
    assert set(done["inserted"]) <= set(found)
    assert found["DE*PUL*E0000010"] > datetime(2025, 1, 1, tzinfo=UTC)  # the new version


def test_a_failing_clm_changes_nothing_and_the_run_says_why(
    live_server: LiveServer, operator: str, clm: ClmDataProcess
) -> None:
    before = searched(live_server)
    clm.change(delete=["DE*PUL*E0000020"], reassign={"DE*PUL*E0000021": "DE*ICE"})
    try:
        for mode, kind in (("garbage", "not_xml"), ("schema_invalid", "schema_invalid")):
            clm.set_mode(mode, after=1)  # page 1 answers, page 2 does not
            failed = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR, "--full")
            assert failed.returncode == 1
            assert f"DE*PUL full pull failed ({kind})" in failed.stdout
            assert "page 2" in failed.stdout and searched(live_server) == before
    finally:
        clm.set_mode("ok")
    listed = run_cli(live_server.env, "evse", "pulls", "--operator", OPERATOR, "--page-size", "2")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert "failed" in lines[0] and "schema_invalid" in lines[0]
    assert "failed" in lines[1] and "not_xml" in lines[1]
    fixed = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR)  # the delta is kept
    assert fixed.returncode == 0 and "DE*PUL delta pull ok in" in fixed.stdout
    assert "2 received, 0 stored, 1 deleted, 1 rejected" in fixed.stdout
    assert "rejected DE*PUL*E0000021: EvseInconsistent" in fixed.stdout
    assert set(searched(live_server)) == set(before) - {"DE*PUL*E0000020"}


def test_statuses_are_pulled_published_and_expire(
    live_server: LiveServer, operator: str, clm: ClmDataProcess
) -> None:
    evsp = client(live_server.base_url, "marketplace", *TNM)
    url = "http://127.0.0.1:9/pull-test/notify"
    subscription = evsp.Subscribe(
        topic="EvseStatusChanged",
        endpointUrl=url,
        filter={"operatorIds": {"operatorId": [OPERATOR]}},
    )
    try:
        pulled = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR, "--status")
        assert pulled.returncode == 0 and "DE*PUL status pull ok" in pulled.stdout
        evses = ["DE*PUL*E0000030", "DE*PUL*E0000031"]
        clm.new_status(evses, ttl_s=4)
        again = run_cli(live_server.env, "evse", "pull", "--operator", OPERATOR, "--status")
        assert again.returncode == 0 and "2 received, 2 stored" in again.stdout
        wire = [s.status for s in EvseStatusClient(clm.status_url).status_by_id(evses)]
        reader = client(live_server.base_url, "evse_search", *NAVI)
        answers = reader.GetEvseStatusById(evseId=evses)
        assert [a.status.major for a in answers] == [s.major for s in wire if s is not None]
        queued = run_cli(live_server.env, "outbox", "list", "--page-size", "1000")
        rows = [line for line in queued.stdout.splitlines() if url in line]
        assert len(rows) >= 2 and all("EvseStatusChanged" in line for line in rows)
        ttl = max(s.ttl for s in wire if s is not None and s.ttl is not None)
        time.sleep(max(0.0, (ttl - datetime.now(UTC)).total_seconds()) + 0.5)
        expired = reader.GetEvseStatusById(evseId=evses)
        assert [a.status.major for a in expired] == ["unknown", "unknown"]
    finally:
        evsp.Unsubscribe(subscriptionId=subscription.subscriptionId)


def test_two_cli_pulls_of_one_operator_do_not_both_pull(
    live_server: LiveServer, operator: str, tmp_path: Path
) -> None:
    log = str(tmp_path / "slow.jsonl")
    with start_clm_data_process(
        "DE*PLS", evses=120, max_page_size=50, mode="slow", delay_s=1.5, log_path=log
    ) as slow:
        password = register_operator(live_server, "pull-slow", "DE*PLS")
        publish_clm_data(live_server, "pull-slow", password, slow)  # reads the WSDL: no delay
        command = [sys.executable, "-m", "gembus.cli", "evse", "pull", "--operator", "DE*PLS"]
        both = [
            subprocess.Popen(
                command, env=live_server.env, cwd=REPO, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outcomes = sorted(p.wait(60) for p in both)
        outputs = [p.stdout.read() if p.stdout else "" for p in both]
        requests = [r for r in read_log(log) if r.path == MASTERDATA_PATH]
    assert outcomes == [0, 1]
    assert sum("full pull ok" in out for out in outputs) == 1
    assert len(requests) == 3  # one full read, three pages
    listed = gembus_cli(live_server.env, "evse", "pulls", "--operator", "DE*PLS")
    assert listed.count("DE*PLS") == 1
    forget_evses(live_server, "DE*PLS")


@pytest.fixture
def worker_database(secret_key: str) -> Iterator[dict[str, str]]:
    """A database of its own for workers (they deliver every pending outbox row they see)."""
    with fresh_postgres_database() as url:
        env = {**os.environ, "GEMBUS_DATABASE_URL": url, "GEMBUS_SECRET_KEY": secret_key}
        env["GEMBUS_LOG_FORMAT"] = "json"
        gembus_cli(env, "db", "upgrade")
        gembus_cli(env, "demo", "load")
        yield env


def test_two_workers_pull_a_due_operator_once(
    worker_database: dict[str, str], tmp_path: Path
) -> None:
    from gembus.bootstrap import build
    from gembus.settings import Settings

    app = make_clm_data_app("DE*ICE", 120, max_page_size=50, log_path=str(tmp_path / "clm.jsonl"))
    app.state.set_mode("slow", delay_s=0.5)
    with serve(app, path=MASTERDATA_PATH) as running:
        gembus = build(
            Settings(
                database_url=worker_database["GEMBUS_DATABASE_URL"],
                secret_key=worker_database["GEMBUS_SECRET_KEY"],
                log_level="WARNING",
            )
        )
        published_clm(gembus.uow, partner(gembus.uow, "ice-charging"), running.base_url)
        gembus.engine.dispose()
        args = ["--evse-pull-every", "3600", "--evse-status-pull-every", "0"]
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "gembus.cli", "worker", *args, "--sdr-batches-every", "0"],
                env=worker_database,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "DE*ICE" not in pulls(worker_database):
                time.sleep(0.5)
            time.sleep(4)  # time for the other worker to pull too, if the lease let it
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(15)
    listed = pulls(worker_database)
    assert listed.count("DE*ICE") == 1 and "schedule" in listed and " ok " in listed
    requests = [r for r in read_log(tmp_path / "clm.jsonl") if r.path == MASTERDATA_PATH]
    assert len(requests) == 3


def pulls(env: dict[str, str]) -> str:
    return "\n".join(gembus_cli(env, "evse", "pulls").splitlines()[:-1])
