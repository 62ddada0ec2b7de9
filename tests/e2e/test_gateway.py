"""The Dynamic Service Gateway end to end: zeep requester -> gunicorn gateway -> fake CLMs.

The providers are real spyne services (tests/fakes/clm.py) running as separate processes on
127.0.0.1, registered on the marketplace through SOAP like any operator would register its
system; the requester integrates once, with the gateway's WSDL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
import zeep.exceptions
from sqlalchemy import create_engine, text
from zeep import Client, Settings
from zeep.wsse.username import UsernameToken

from bus.equivalence import differences, signature
from tests.conftest import REPO
from tests.e2e.conftest import (
    LiveServer,
    gembus_cli,
    offer_reservation_service,
    register_operator,
)
from tests.fakes.clm import ClmProcess, start_clm_process
from tests.support.soap import envelope, wsse_header
from tests.support.zeep_validation import ContractValidationPlugin

pytestmark = pytest.mark.e2e
ADMIN = ("gembus-admin", "demo-admin-password")
TNM = ("tnm-mobility", "demo-evsp-password")
ACTION = "urn:gembus:reservation:v1/ReserveEvse"


@dataclass
class Provider:
    partner_id: str
    password: str
    operator_id: str
    clm: ClmProcess
    service_id: str = ""


def _offer(server: LiveServer, provider: Provider, quota: dict[str, int] | None = None) -> str:
    return offer_reservation_service(
        server, provider.partner_id, provider.password, provider.clm.url, quota=quota
    )


@pytest.fixture(scope="module")
def providers(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Provider]]:
    logs = tmp_path_factory.mktemp("clm")
    specs = {  # name: (operator ID, delay)
        "ice": ("DE*ICE", 0.0),
        "bmw": ("DE*BMW", 0.0),
        "quota": ("IT*QTA", 0.0),
        "slow": ("IT*SLW", 4.0),
        "down": ("IT*DWN", 0.0),
    }
    found: dict[str, Provider] = {}
    try:
        for name, (operator_id, delay) in specs.items():
            clm = start_clm_process(operator_id, delay_s=delay, log_path=logs / f"{name}.log")
            partner_id = {"ice": "ice-charging", "bmw": "bmw-emobility"}.get(name, f"{name}-cpo-gw")
            password = {"ice": "demo-operator-password", "bmw": "demo-evsp2-password"}.get(name)
            found[name] = Provider(
                partner_id,
                password or register_operator(live_server, partner_id, operator_id),
                operator_id,
                clm,
            )
        for name, provider in found.items():
            provider.service_id = _offer(
                live_server, provider, {"perDay": 2} if name == "quota" else None
            )
        yield found
    finally:
        for provider in found.values():
            provider.clm.kill()


def gateway(server: LiveServer, target: str, user: tuple[str, str] = TNM) -> object:
    settings = Settings(strict=True, forbid_dtd=True, forbid_entities=True, xml_huge_tree=False)
    return Client(
        f"{server.base_url}/gateway/{target}?wsdl",
        wsse=UsernameToken(*user, use_digest=True),
        settings=settings,
        plugins=[ContractValidationPlugin("reservation")],
    ).service


def reserve(service: object, evse_id: str) -> object:
    return service.ReserveEvse(  # type: ignore[attr-defined]
        providerId="NL-TNM",
        contractId="NL-TNM-000122045-U",
        evseId=evse_id,
        partnerReservationId=f"TNM-{uuid.uuid4().hex[:12]}",
        requestedExpiry=datetime.now(UTC) + timedelta(minutes=30),
    )


def raw_reserve(evse_id: str, extra_header: str = "") -> bytes:
    """A ReserveEvse envelope as a partner stack would send it, with a fresh UsernameToken."""
    return envelope(
        '<r:ReserveEvse xmlns:r="urn:gembus:reservation:v1"><r:providerId>NL-TNM</r:providerId>'
        f"<r:contractId>NL-TNM-000122045-U</r:contractId><r:evseId>{evse_id}</r:evseId>"
        "<r:requestedExpiry>2030-01-01T10:00:00Z</r:requestedExpiry></r:ReserveEvse>",
        wsse_header(*TNM) + extra_header,
    )


def fault_code(raised: pytest.ExceptionInfo[zeep.exceptions.Fault]) -> str:
    return str(raised.value.detail[0].findtext("{urn:gembus:common:v1}code"))


def test_content_routing_reaches_the_evse_operators_own_system(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    service = gateway(live_server, "reservation")
    ice = reserve(service, "DE*ICE*E100001*1")
    bmw = reserve(service, "DE*BMW*E200001*1")
    assert ice.reservationId.startswith("DEICE-R") and bmw.reservationId.startswith("DEBMW-R")
    assert [
        r.body_child().findtext("{urn:gembus:reservation:v1}evseId")
        for r in providers["ice"].clm.received()
    ] == ["DE*ICE*E100001*1"]
    assert [
        r.body_child().findtext("{urn:gembus:reservation:v1}evseId")
        for r in providers["bmw"].clm.received()
    ] == ["DE*BMW*E200001*1"]


def test_the_gateway_passes_the_requesters_bytes_through(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    body = raw_reserve("DE*ICE*E100002*1")
    answer = requests.post(
        f"{live_server.base_url}/gateway/{providers['ice'].service_id}",
        data=body,
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
    )
    assert answer.status_code == 200 and b"DEICE-R" in answer.content
    assert providers["ice"].clm.received()[-1].body == body  # the very bytes, header included


def test_a_replayed_message_is_refused_before_it_reaches_the_provider(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    """The nonce is recorded in the same statement as the call, before forwarding."""
    body = raw_reserve("DE*ICE*E100004*1")
    url = f"{live_server.base_url}/gateway/{providers['ice'].service_id}"
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}
    before = len(providers["ice"].clm.received())
    first = requests.post(url, data=body, timeout=10, headers=headers)
    replay = requests.post(url, data=body, timeout=10, headers=headers)
    assert first.status_code == 200 and b"DEICE-R" in first.content
    assert replay.status_code == 500 and b"Client.Authentication" in replay.content
    assert b"replayed nonce" in replay.content
    assert len(providers["ice"].clm.received()) == before + 1


def test_an_explicit_target_partner_overrides_content(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    target = '<gw:targetPartner xmlns:gw="urn:gembus:gateway:v1">bmw-emobility</gw:targetPartner>'
    body = raw_reserve("DE*ICE*E100003*1", target)
    answer = requests.post(
        f"{live_server.base_url}/gateway/reservation",
        data=body,
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'},
    )
    # BMW's system answers for itself: it does not know ICE's EVSE (its fault passes through)
    assert answer.status_code == 500 and b"Client.UnknownEvse" in answer.content
    assert (
        providers["bmw"]
        .clm.received()[-1]
        .body_child()
        .findtext("{urn:gembus:reservation:v1}evseId")
        == "DE*ICE*E100003*1"
    )


def test_no_contract_and_unknown_service_are_declared_faults(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(
            gateway(live_server, "reservation", ("navi-search", "demo-search-password")),
            "DE*ICE*E1*1",
        )
    assert fault_code(raised) == "Client.NoContract"
    assert "navi-search has no active contract" in raised.value.message
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(gateway(live_server, "reservation"), "FR*XYZ*E1*1")
    assert fault_code(raised) == "Client.UnknownService"


def test_the_daily_quota_is_enforced(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    service = gateway(live_server, providers["quota"].service_id)
    reserve(service, "IT*QTA*E1*1")
    reserve(service, "IT*QTA*E2*1")
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(service, "IT*QTA*E3*1")
    assert fault_code(raised) == "Client.QuotaExceeded"
    assert len(providers["quota"].clm.received()) == 2


def test_a_slow_provider_times_out(live_server: LiveServer, providers: dict[str, Provider]) -> None:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        reserve(gateway(live_server, providers["slow"].service_id), "IT*SLW*E1*1")
    assert fault_code(raised) == "Server.ProviderTimeout"


def test_a_route_policy_gives_one_provider_its_own_timeout(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    """The deployment waits 2 s; the operator gives the slow provider's route 0.5 s."""
    slow = providers["slow"].service_id
    shown = gembus_cli(live_server.env, "gateway", "policy", slow, "--timeout-ms", "500")
    assert "timeout=500 ms" in shown
    assert "timeout=0.5s" in gembus_cli(live_server.env, "gateway", "routes")
    try:
        time.sleep(0.6)  # every worker reloads its table within 0.25 s of the change
        started = time.monotonic()
        with pytest.raises(zeep.exceptions.Fault) as raised:
            reserve(gateway(live_server, slow), "IT*SLW*E2*1")
        assert fault_code(raised) == "Server.ProviderTimeout"
        assert "within 0.5 s" in raised.value.message and time.monotonic() - started < 1.8
    finally:
        gembus_cli(live_server.env, "gateway", "policy", slow, "--clear")


def test_a_provider_that_is_down_gets_suspended(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    providers["down"].clm.kill()
    service = gateway(live_server, providers["down"].service_id)
    messages = []
    for _ in range(10):  # each of the two workers suspends after three failures
        with pytest.raises(zeep.exceptions.Fault) as raised:
            reserve(service, "IT*DWN*E1*1")
        assert fault_code(raised) == "Server.ProviderUnavailable"
        messages.append(raised.value.message)
    assert any("suspended" in m for m in messages) and any(
        "cannot be reached" in m for m in messages
    )


def test_every_call_is_in_the_transaction_log_and_feeds_usage(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    reserve(gateway(live_server, "reservation"), "DE*ICE*E100009*1")
    engine = create_engine(live_server.env["GEMBUS_DATABASE_URL"])
    pending = "SELECT count(*) FROM gateway_call WHERE outcome = 'pending'"
    deadline = time.monotonic() + 5  # a call is recorded pending, its outcome follows <= 0.1 s
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(text(pending)).scalar_one() == 0:
                break
        time.sleep(0.05)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT requester_id, provider_id, service_id, operation, outcome, fault_code, contract_id, "
                "latency_ms, bytes_in, bytes_out, message_id FROM gateway_call WHERE family = 'reservation'"
            )
        ).all()
        usage = connection.execute(
            text(
                "SELECT count(*) FROM usage_call u JOIN gateway_call g ON g.contract_id = u.contract_id "
                "WHERE g.service_id = :s"
            ),
            {"s": providers["ice"].service_id},
        ).scalar_one()
    engine.dispose()
    ok = [r for r in rows if r.outcome == "ok" and r.provider_id == "ice-charging"]
    assert ok and all(
        r.contract_id and r.latency_ms > 0 and r.bytes_in > 0 and r.bytes_out > 0 for r in ok
    )
    assert {r.fault_code for r in rows} >= {
        "Client.NoContract",
        "Client.QuotaExceeded",
        "Server.ProviderTimeout",
        "Server.ProviderUnavailable",
    }
    assert usage > 0


def test_the_gateway_serves_the_canonical_wsdl_with_its_own_address(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    for target in ("reservation", providers["ice"].service_id):
        url = f"{live_server.base_url}/gateway/{target}?wsdl"
        served = requests.get(url, timeout=5).content
        assert f"{live_server.base_url}/gateway/{target}".encode() in served
        canonical = REPO / "wsdl" / "reservation.wsdl"
        assert (
            differences(
                signature(canonical.read_bytes(), canonical.as_uri()), signature(served, url)
            )
            == []
        )


def test_unknown_gateway_targets_are_404(live_server: LiveServer) -> None:
    assert (
        requests.get(f"{live_server.base_url}/gateway/svc-nope?wsdl", timeout=5).status_code == 404
    )


def test_a_call_is_found_in_the_log_by_the_message_id_its_reply_carries(
    live_server: LiveServer, providers: dict[str, Provider]
) -> None:
    url = f"{live_server.base_url}/gateway/{providers['ice'].service_id}"
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'}
    body = raw_reserve("DE*ICE*E100010*1")
    answer = requests.post(url, data=body, timeout=10, headers=headers)
    replay = requests.post(url, data=body, timeout=10, headers=headers)
    message_id = answer.headers["X-Gembus-Message-Id"]
    assert answer.status_code == 200 and replay.status_code == 500 and len(message_id) == 32
    deadline = time.monotonic() + 5  # the outcome follows the reply within 0.1 s
    while True:
        shown = gembus_cli(live_server.env, "gateway", "calls", "--message-id", message_id)
        if " ok " in shown or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (line,) = shown.splitlines()[:-1]
    assert message_id in line and "tnm-mobility -> ice-charging" in line
    assert f"{providers['ice'].service_id} reservation.ReserveEvse" in line and " ok " in line
    assert shown.splitlines()[-1] == "-- page 1, 1 of 1"
    refused = replay.headers["X-Gembus-Message-Id"]
    faults = gembus_cli(
        live_server.env, "gateway", "calls", "--requester", "tnm-mobility", "--outcome", "fault"
    )
    (refusal,) = [f for f in faults.splitlines() if refused in f]
    assert "Client.Authentication" in refusal and " ok " not in faults
