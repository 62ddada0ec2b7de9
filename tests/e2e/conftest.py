"""A real gunicorn serving gembus on 127.0.0.1, migrated and loaded with the demo partners.

It uses the session's fresh PostgreSQL database (so CI exercises the production database
end to end) and runs the same commands a user runs: ``gembus db upgrade``, ``gembus demo
load``, ``gembus serve``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.conftest import REPO
from tests.support.databases import fresh_postgres_database

if TYPE_CHECKING:
    from tests.fakes.clm_data import ClmDataProcess


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    env: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_operator(server: LiveServer, partner_id: str, operator_id: str) -> str:
    """An EVSE operator registered by the marketplace operator over SOAP; returns its password."""
    from tests.support.zeep_validation import client

    password = f"{partner_id}-password"
    client(server.base_url, "marketplace", "gembus-admin", "demo-admin-password").RegisterPartner(
        partnerId=partner_id,
        password=password,
        data={
            "legalName": partner_id,
            "roles": {"role": ["EvseOperator"]},
            "operatorIds": {"operatorId": [operator_id]},
            "contact": {"email": f"{partner_id}@x.example"},
        },
    )
    return password


def offer_reservation_service(
    server: LiveServer,
    partner_id: str,
    password: str,
    endpoint_url: str,
    *,
    version: int = 1,
    quota: dict[str, int] | None = None,
    accepted_by: tuple[str, str] | None = ("tnm-mobility", "demo-evsp-password"),
) -> str:
    """An operator's CLM registered and published as its reservation service (``version`` of
    the family), with an offering that ``accepted_by`` (an EVSP) accepts; the service ID."""
    from datetime import UTC, datetime, timedelta

    from tests.support.zeep_validation import client

    market = client(server.base_url, "marketplace", partner_id, password)
    service = market.RegisterService(
        data={
            "name": f"{partner_id} reservation v{version}",
            "category": "ValueAdded",
            "serviceInterface": {"family": "reservation", "version": version},
            "endpointUrl": endpoint_url,
            "description": "CLM reservation endpoint",
        }
    )
    market.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")
    terms: dict[str, object] = {"pricePerCall": "0.05", "currency": "EUR"}
    if quota:
        terms["callQuota"] = quota
    offering = market.CreateOffering(
        serviceId=service.serviceId,
        name="Reservations",
        terms=terms,
        validity={"validFrom": datetime.now(UTC) - timedelta(minutes=1)},
    )
    if accepted_by is not None:
        evsp = client(server.base_url, "marketplace", *accepted_by)
        evsp.AcceptOffering(offeringId=offering.offeringId)
    return str(service.serviceId)


def publish_clm_data(
    server: LiveServer, partner_id: str, password: str, clm: ClmDataProcess
) -> None:
    """An operator's data-serving CLM registered and published as its ProvideEVSE-MasterData
    and ProvideEVSEStatusData services, which is how ``gembus evse pull`` and the workers find
    it; gembus reads both WSDLs at registration."""
    from tests.support.zeep_validation import client

    market = client(server.base_url, "marketplace", partner_id, password)
    for family, url in (("evse_masterdata", clm.masterdata_url), ("evse_status", clm.status_url)):
        service = market.RegisterService(
            data={
                "name": f"{partner_id} {family}",
                "category": "ValueAdded",
                "serviceInterface": {"family": family, "version": 1},
                "endpointUrl": url,
                "description": "the operator's CLM",
            }
        )
        market.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")


def forget_evses(server: LiveServer, *operator_ids: str) -> None:
    """Remove these operators' EVSEs from the shared server when a module is done with them:
    the search tests compare every EVSE the server holds with a brute-force reference."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.env["GEMBUS_DATABASE_URL"])
    keys = {"keys": [o.replace("*", "").replace("-", "") for o in operator_ids]}
    owned = "SELECT evse_key FROM evse WHERE operator_key = ANY(:keys)"
    with engine.begin() as connection:
        for table in ("evse_status", "evse_document"):
            connection.execute(
                text(f"DELETE FROM {table} WHERE evse_key IN ({owned})"),
                keys,
            )
        connection.execute(text("DELETE FROM evse WHERE operator_key = ANY(:keys)"), keys)
    engine.dispose()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``gembus`` as a user runs it; the caller checks the exit status."""
    return subprocess.run(
        [sys.executable, "-m", "gembus.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def gembus_cli(env: dict[str, str], *args: str) -> str:
    done = run_cli(env, *args)
    assert done.returncode == 0, f"gembus {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def live_server_database() -> Iterator[str]:
    """The server's own database: the integration tier empties the shared one between tests."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def live_server(
    live_server_database: str, secret_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    postgres_url = live_server_database
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "server.log"
    env = {
        **os.environ,
        "GEMBUS_DATABASE_URL": postgres_url,
        "GEMBUS_SECRET_KEY": secret_key,
        "GEMBUS_WORKERS": "2",
        "GEMBUS_GATEWAY_TIMEOUT_S": "2",
        "GEMBUS_GATEWAY_VALIDATE_RESPONSES": "always",
        "GEMBUS_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics")),
    }
    gembus_cli(env, "db", "upgrade")
    gembus_cli(env, "demo", "load")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gembus.cli", "serve", "--bind", f"127.0.0.1:{port}"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", env, log_path)
    try:
        _wait_healthy(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_healthy(server: LiveServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        try:
            if requests.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not become healthy in 30 s:\n{server.log()}")
