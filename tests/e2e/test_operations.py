"""What an operator of gembus relies on: health, metrics, traceable logs, credential lifecycle."""

from __future__ import annotations

import json

import pytest
import requests
import zeep.exceptions

from tests.e2e.conftest import LiveServer
from tests.support.soap import ACTION, envelope, get_partner, wsse_header
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e
ADMIN = ("gembus-admin", "demo-admin-password")


def _post(server: LiveServer, body: bytes) -> requests.Response:
    return requests.post(
        f"{server.base_url}/services/marketplace",
        data=body,
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
    )


def test_health_checks_the_database(live_server: LiveServer) -> None:
    response = requests.get(f"{live_server.base_url}/health", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def _metric(server: LiveServer, line_start: str) -> float:
    text = requests.get(f"{server.base_url}/metrics", timeout=5).text
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    return sum(values)


def test_metrics_count_requests_faults_and_latency_across_workers(live_server: LiveServer) -> None:
    ok = 'gembus_soap_requests_total{family="marketplace",operation="GetPartner",outcome="ok"}'
    fault = 'gembus_soap_faults_total{code="Client.UnknownPartner",family="marketplace",operation="GetPartner"}'
    histogram = 'gembus_soap_request_seconds_count{family="marketplace",operation="GetPartner"}'
    before = (
        _metric(live_server, ok),
        _metric(live_server, fault),
        _metric(live_server, histogram),
    )
    for _ in range(6):  # enough requests to reach both workers
        assert _post(live_server, envelope(get_partner(), wsse_header(*ADMIN))).status_code == 200
    assert (
        _post(live_server, envelope(get_partner("nobody"), wsse_header(*ADMIN))).status_code == 500
    )
    after = (_metric(live_server, ok), _metric(live_server, fault), _metric(live_server, histogram))
    assert after[0] - before[0] == 6 and after[1] - before[1] == 1 and after[2] - before[2] == 7


def test_every_log_line_of_a_request_carries_its_message_id(live_server: LiveServer) -> None:
    response = _post(live_server, envelope(get_partner("nobody"), wsse_header(*ADMIN)))
    message_id = response.headers["X-Gembus-Message-Id"]
    assert message_id in response.text  # quoted in the fault detail for support
    import time

    lines: list[dict[str, object]] = []
    for _ in range(20):
        lines = [
            json.loads(line)
            for line in live_server.log().splitlines()
            if line.startswith("{") and message_id in line
        ]
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    events = {line["event"] for line in lines}
    assert {"soap.client_fault", "soap.request"} <= events
    assert all(
        line["message_id"] == message_id and line["partner"] == "gembus-admin" for line in lines
    )


def test_replays_are_rejected_by_every_worker(live_server: LiveServer) -> None:
    """SECURITY.md R7: one captured message resent 100 times over fresh connections."""
    body = envelope(get_partner(), wsse_header(*ADMIN))
    assert _post(live_server, body).status_code == 200
    accepted = sum(_post(live_server, body).status_code == 200 for _ in range(100))
    assert accepted == 0


def test_rotation_and_deactivation_take_effect_at_once(live_server: LiveServer) -> None:
    admin = client(live_server.base_url, "marketplace", *ADMIN)
    admin.RegisterPartner(
        partnerId="rotating-cpo",
        password="first-password-1",
        data={
            "legalName": "Rotating CPO",
            "roles": {"role": ["EvseOperator"]},
            "operatorIds": {"operatorId": ["FR*ROT"]},
            "contact": {"email": "ops@rot.example"},
        },
    )
    own = client(live_server.base_url, "marketplace", "rotating-cpo", "first-password-1")
    ack = own.RotatePartnerCredentials(partnerId="rotating-cpo", newPassword="second-password-2")
    assert ack.messageId
    with pytest.raises(zeep.exceptions.Fault, match="authentication failed"):
        client(live_server.base_url, "marketplace", "rotating-cpo", "first-password-1").GetPartner(
            partnerId="rotating-cpo"
        )
    fresh = client(live_server.base_url, "marketplace", "rotating-cpo", "second-password-2")
    assert fresh.GetPartner(partnerId="rotating-cpo").status == "active"
    with pytest.raises(zeep.exceptions.Fault) as raised:
        fresh.DeactivatePartner(partnerId="ice-charging")
    assert raised.value.code.endswith("Client.NotAuthorized")
    assert (
        admin.DeactivatePartner(partnerId="rotating-cpo", reason="contract ended").status
        == "deactivated"
    )
    with pytest.raises(zeep.exceptions.Fault, match="not active"):
        fresh.GetPartner(partnerId="rotating-cpo")
