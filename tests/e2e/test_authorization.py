"""Roaming authorization end to end: zeep operators -> gunicorn gembus -> fake EVSPs.

The EVSPs that answer live are real spyne services (tests/fakes/evsp_auth.py) running as
their own processes on 127.0.0.1, registered on the marketplace through SOAP like any EVSP
would register its endpoint, and switched to live mode with the ``gembus authorization
settings`` command. Every message the operators exchange is validated against the canonical
XSD by the zeep plugin (tests/support/zeep_validation.py).

The cast: ice-charging (operator DE*ICE) has roaming agreements with tnm-mobility (NL-TNM,
stored list, from the demo), liv-evsp (IT-LIV, live) and an expired one with old-evsp
(IT-OLD); opr-cpo (operator IT*OPR) has agreements with slw-evsp (IT-SLW, live but slower
than its timeout) and dwn-evsp (IT-DWN, live but down).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import zeep.exceptions

from domain.identifiers import emaid_check_digit
from tests.e2e.conftest import LiveServer, gembus_cli
from tests.fakes.evsp_auth import EvspProcess, start_evsp_process
from tests.support.soap import envelope, wsse_header
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e
ADMIN = ("gembus-admin", "demo-admin-password")
ICE = ("ice-charging", "demo-operator-password")
TNM = ("tnm-mobility", "demo-evsp-password")
BMW = ("bmw-emobility", "demo-evsp2-password")
EVSE = "DE*ICE*E123456*7"
TNM_CONTRACT = "NL-TNM-000122045-U"  # demo: active, RFID 4F2A19C3, reservation + CO2 report
TNM_BLOCKED = "NL-TNM-C00000002-N"  # demo: blocked
SLOW_TIMEOUT_MS = 500


def emaid(provider: str, instance: str) -> str:
    first14 = f"{provider.replace('-', '')}{instance}"
    return f"{provider}-{instance}-{emaid_check_digit(first14)}"


LIV_ACTIVE = emaid("IT-LIV", "C00000001")
LIV_BLOCKED = emaid("IT-LIV", "C00000002")
SLW_ACTIVE = emaid("IT-SLW", "C00000001")
DWN_ACTIVE = emaid("IT-DWN", "C00000001")
OLD_ACTIVE = emaid("IT-OLD", "C00000001")


@dataclass
class Cast:
    server: LiveServer
    liv: EvspProcess
    slw: EvspProcess
    dwn: EvspProcess
    passwords: dict[str, str]

    def operator(self, who: tuple[str, str] = ICE, *, soap12: bool = False) -> Any:
        return client(self.server.base_url, "authorization", *who, soap12=soap12)

    def login(self, partner_id: str) -> tuple[str, str]:
        return partner_id, self.passwords[partner_id]


def _register(server: LiveServer, partner_id: str, role: str, identifier: str) -> str:
    password = f"{partner_id}-secret"
    ids = (
        {"operatorIds": {"operatorId": [identifier]}}
        if role == "EvseOperator"
        else {"providerIds": {"providerId": [identifier]}}
    )
    client(server.base_url, "marketplace", *ADMIN).RegisterPartner(
        partnerId=partner_id,
        password=password,
        data={
            "legalName": partner_id,
            "roles": {"role": [role]},
            **ids,
            "contact": {"email": f"{partner_id}@x.example"},
        },
    )
    return password


def _publish(server: LiveServer, partner: tuple[str, str], url: str) -> None:
    market = client(server.base_url, "marketplace", *partner)
    service = market.RegisterService(
        data={
            "name": f"{partner[0]} live authorization",
            "category": "ClearingHouse",
            "serviceInterface": {"family": "authorization", "version": 1},
            "endpointUrl": url,
            "description": "answers AuthorizeRoaming for our own customers",
        }
    )
    market.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")


def _agree(
    server: LiveServer, operator: tuple[str, str], ids: tuple[str, str], **window: Any
) -> None:
    validity = window or {"validFrom": datetime.now(UTC) - timedelta(minutes=1)}
    client(server.base_url, "marketplace", *operator).CreateRoamingAgreement(
        operatorId=ids[0], providerId=ids[1], validity=validity
    )


@pytest.fixture(scope="module")
def cast(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cast]:
    logs = tmp_path_factory.mktemp("evsp")
    passwords = {
        name: _register(live_server, name, role, identifier)
        for name, role, identifier in (
            ("liv-evsp", "Evsp", "IT-LIV"),
            ("slw-evsp", "Evsp", "IT-SLW"),
            ("dwn-evsp", "Evsp", "IT-DWN"),
            ("old-evsp", "Evsp", "IT-OLD"),
            ("opr-cpo", "EvseOperator", "IT*OPR"),
        )
    }
    liv = start_evsp_process(
        "IT-LIV",
        [f"{LIV_ACTIVE}=active:AB12CD", f"{LIV_BLOCKED}=blocked"],
        log_path=logs / "liv.log",
    )
    slw = start_evsp_process(
        "IT-SLW", [f"{SLW_ACTIVE}=active"], delay_s=3.0, log_path=logs / "slw.log"
    )
    dwn = start_evsp_process("IT-DWN", [f"{DWN_ACTIVE}=active"])
    found = Cast(live_server, liv, slw, dwn, passwords)
    try:
        for name, fake in (("liv-evsp", liv), ("slw-evsp", slw), ("dwn-evsp", dwn)):
            _publish(live_server, found.login(name), fake.url)
        env = live_server.env
        gembus_cli(
            env,
            "authorization",
            "settings",
            "set",
            "liv-evsp",
            "--mode",
            "liveEvsp",
            "--timeout-ms",
            "5000",
        )
        for name in ("slw-evsp", "dwn-evsp"):
            gembus_cli(
                env,
                "authorization",
                "settings",
                "set",
                name,
                "--mode",
                "liveEvsp",
                "--timeout-ms",
                str(SLOW_TIMEOUT_MS),
            )
        _agree(live_server, ICE, ("DE*ICE", "IT-LIV"))
        _agree(
            live_server,
            ICE,
            ("DE*ICE", "IT-OLD"),
            validFrom=datetime(2020, 1, 1, tzinfo=UTC),
            validTo=datetime(2021, 1, 1, tzinfo=UTC),
        )
        _agree(live_server, found.login("opr-cpo"), ("IT*OPR", "IT-SLW"))
        _agree(live_server, found.login("opr-cpo"), ("IT*OPR", "IT-DWN"))
        dwn.kill()  # registered while it was up; down from now on
        time.sleep(0.6)  # every worker's caches poll the registry at most every 0.25 s
        yield found
    finally:
        for fake in (liv, slw, dwn):
            fake.kill()


def ask(
    service: Any,
    contract_id: str | None,
    *,
    operator: str = "DE*ICE",
    evse: str = EVSE,
    **more: Any,
) -> Any:
    return service.AuthorizeRoaming(
        operatorId=operator, evseId=evse, contractId=contract_id, **more
    )


def rfid(uid: str, **more: str) -> dict[str, str]:
    return {"instance": uid, "tokenType": "rfid", **more}


# --------------------------------------------------------------------------- stored list


def test_a_customer_in_the_stored_list_is_authorized(cast: Cast) -> None:
    answer = ask(
        cast.operator(),
        TNM_CONTRACT,
        token=rfid("4F2A19C3", tokenSubType="mifareCls"),
        partnerSessionId="ICE-e2e-1",
    )
    assert (answer.result, answer.reason, answer.oicpStatusCode) == ("Authorized", "OK", "000")
    assert (answer.decisionSource, answer.providerId, answer.contractId) == (
        "storedList",
        "NL-TNM",
        TNM_CONTRACT,
    )
    assert answer.token.instance == "4F2A19C3" and answer.partnerSessionId == "ICE-e2e-1"
    assert answer.authorizationStopIdentifications.contractId == [TNM_CONTRACT]
    assert datetime.now(UTC) < answer.validUntil <= datetime.now(UTC) + timedelta(minutes=15)
    din = ask(cast.operator(soap12=True), "NL-TNM-012204-5")
    assert (din.reason, din.contractId) == ("OK", "NL-TNM-012204-5"), "the DIN form, echoed as sent"


def test_a_repeat_with_the_same_partner_session_returns_the_stored_decision(cast: Cast) -> None:
    first = ask(cast.operator(), TNM_CONTRACT, partnerSessionId="ICE-e2e-repeat")
    again = ask(cast.operator(), TNM_CONTRACT, partnerSessionId="ICE-e2e-repeat")
    assert again.sessionId == first.sessionId and again.decisionSource == "storedDecision"
    other = ask(cast.operator(), TNM_CONTRACT, partnerSessionId="ICE-e2e-repeat-2")
    assert other.sessionId != first.sessionId


@pytest.mark.parametrize(
    ("kwargs", "reason", "code"),
    [
        ({"contract_id": TNM_BLOCKED}, "CONTRACT_LOCKED", "200"),
        ({"contract_id": emaid("NL-TNM", "C00000077")}, "NO_CONTRACT", "210"),
        ({"contract_id": TNM_CONTRACT, "token": rfid("0BADCAFE")}, "RFID_UNKNOWN", "102"),
        (
            {"contract_id": TNM_CONTRACT, "operator": "DE*BMW", "evse": "DE*BMW*E1"},
            "CALLER_MISMATCH",
            "017",
        ),
        ({"contract_id": TNM_CONTRACT, "evse": "DE*BMW*E1"}, "EVSE_INCONSISTENT", "018"),
        ({"contract_id": TNM_CONTRACT, "evse": "+99*823*1234"}, "EVSE_UNKNOWN", "603"),
        ({"contract_id": "NL-TNM-000122045-X"}, "EVCO_INCONSISTENT", "019"),
        (
            {"contract_id": TNM_CONTRACT, "token": rfid("4F2A19C3", tokenType="remote")},
            "DATA_ERROR",
            "022",
        ),
        ({"contract_id": "DE*BMW*0010LY*3"}, "NO_ROAMING_AGREEMENT", "210"),
        ({"contract_id": OLD_ACTIVE}, "NO_ROAMING_AGREEMENT", "210"),
        ({"contract_id": emaid("FR-XYZ", "C00000001")}, "EVSP_UNKNOWN", "300"),
        ({"contract_id": None, "token": rfid("0BADCAFE")}, "RFID_UNKNOWN", "102"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_denial_comes_with_its_reason_and_oicp_code(
    cast: Cast, kwargs: dict[str, Any], reason: str, code: str
) -> None:
    contract_id = kwargs.pop("contract_id")
    token = kwargs.pop("token", None)
    answer = ask(cast.operator(), contract_id, token=token, **kwargs)
    assert (answer.result, answer.reason, answer.oicpStatusCode) == ("NotAuthorized", reason, code)
    assert answer.validUntil is None and answer.sessionId.startswith("auth-")


def test_an_expired_agreement_says_so(cast: Cast) -> None:
    answer = ask(cast.operator(), OLD_ACTIVE)
    assert answer.reasonDescription == "roaming agreement expired"


def test_the_operators_own_customer_is_not_roaming(cast: Cast) -> None:
    answer = ask(cast.operator(BMW), "DE*BMW*0010LY*3", operator="DE*BMW", evse="DE*BMW*E42")
    assert (answer.result, answer.reason, answer.oicpStatusCode) == (
        "NotRoaming",
        "NOT_ROAMING",
        "000",
    )
    assert answer.providerId == "DE*BMW" and answer.validUntil is None


def test_a_token_alone_is_found_in_the_stored_list(cast: Cast) -> None:
    answer = ask(cast.operator(), None, token=rfid("4f2a19c3"))
    assert (answer.result, answer.decisionSource, answer.contractId) == (
        "Authorized",
        "storedList",
        TNM_CONTRACT,
    )


def test_callers_that_are_not_operators_and_requests_without_customer_are_faults(
    cast: Cast,
) -> None:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        ask(cast.operator(TNM), TNM_CONTRACT)
    assert raised.value.code.endswith("Client.NotAuthorized")
    with pytest.raises(zeep.exceptions.Fault) as raised:
        ask(cast.operator(), None)
    assert raised.value.code.endswith("Client.MissingIdentifier")


# --------------------------------------------------------------------------- live EVSPs


def test_a_live_evsp_decides_with_gembus_session_id(cast: Cast) -> None:
    answer = ask(cast.operator(), LIV_ACTIVE, token=rfid("AB12CD"), partnerSessionId="ICE-live-1")
    assert (answer.result, answer.decisionSource, answer.providerId) == (
        "Authorized",
        "liveEvsp",
        "IT-LIV",
    )
    forwarded = [r for r in cast.liv.received() if r.operation == "AuthorizeRoaming"]
    body = forwarded[-1].body_child()
    assert body is not None
    az = {"az": "urn:gembus:authorization:v1"}
    assert body.xpath("string(az:sessionId)", namespaces=az) == answer.sessionId
    assert body.xpath("string(az:partnerSessionId)", namespaces=az) == "ICE-live-1"
    locked = ask(cast.operator(), LIV_BLOCKED)
    assert (locked.reason, locked.decisionSource) == ("CONTRACT_LOCKED", "liveEvsp")


def test_a_replayed_request_never_reaches_a_live_evsp(cast: Cast) -> None:
    """The nonce is recorded before gembus asks a partner system, not with the decision."""
    body = envelope(
        '<az:AuthorizeRoaming xmlns:az="urn:gembus:authorization:v1">'
        f"<az:operatorId>DE*ICE</az:operatorId><az:evseId>{EVSE}</az:evseId>"
        f"<az:contractId>{LIV_ACTIVE}</az:contractId></az:AuthorizeRoaming>",
        wsse_header(*ICE),
    )
    url = f"{cast.server.base_url}/services/authorization"
    headers = {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": '"urn:gembus:authorization:v1/AuthorizeRoaming"',
    }
    before = len(cast.liv.received())
    first = requests.post(url, data=body, headers=headers, timeout=10)
    replay = requests.post(url, data=body, headers=headers, timeout=10)
    assert first.status_code == 200 and b"Authorized" in first.content
    assert replay.status_code == 500 and b"replayed nonce" in replay.content
    assert len(cast.liv.received()) == before + 1


def test_a_live_evsp_is_asked_for_tokens_no_stored_list_knows(cast: Cast) -> None:
    answer = ask(cast.operator(), None, token=rfid("AB12CD"))
    assert (answer.result, answer.decisionSource, answer.contractId) == (
        "Authorized",
        "liveEvsp",
        LIV_ACTIVE,
    )


def test_a_slow_live_evsp_is_a_timeout_never_an_allow(cast: Cast) -> None:
    opr = cast.operator(cast.login("opr-cpo"))
    started = time.monotonic()
    answer = ask(opr, SLW_ACTIVE, operator="IT*OPR", evse="IT*OPR*E1")
    elapsed = time.monotonic() - started
    assert (answer.result, answer.reason, answer.oicpStatusCode) == (
        "NotAuthorized",
        "EVSP_TIMEOUT",
        "310",
    )
    assert elapsed < 2.5, f"gembus waited {elapsed:.1f} s for a {SLOW_TIMEOUT_MS} ms budget"
    token_only = ask(opr, None, operator="IT*OPR", evse="IT*OPR*E1", token=rfid("0A0A0A"))
    assert token_only.reason == "EVSP_TIMEOUT", "silence might have been a yes"


def test_a_live_evsp_that_is_down_is_service_unavailable(cast: Cast) -> None:
    answer = ask(
        cast.operator(cast.login("opr-cpo")), DWN_ACTIVE, operator="IT*OPR", evse="IT*OPR*E1"
    )
    assert (answer.result, answer.reason, answer.oicpStatusCode) == (
        "NotAuthorized",
        "SERVICE_UNAVAILABLE",
        "320",
    )


def test_the_stored_list_fallback_decides_when_the_live_evsp_is_silent(cast: Cast) -> None:
    slw = cast.login("slw-evsp")
    contracts = client(cast.server.base_url, "customer_contracts", *slw)
    uploaded = contracts.UploadCustomerContracts(
        providerId="IT-SLW",
        mode="full",
        contracts={
            "contract": [
                {
                    "contractId": SLW_ACTIVE,
                    "status": "active",
                    "validity": {"validFrom": datetime(2024, 1, 1, tzinfo=UTC)},
                }
            ]
        },
    )
    assert uploaded.status == "applied"
    gembus_cli(
        cast.server.env, "authorization", "settings", "set", "slw-evsp", "--fallback", "storedList"
    )
    try:
        answer = ask(
            cast.operator(cast.login("opr-cpo")), SLW_ACTIVE, operator="IT*OPR", evse="IT*OPR*E1"
        )
        assert (answer.result, answer.decisionSource) == ("Authorized", "storedList")
        assert "evsp_timeout" in answer.reasonDescription
    finally:
        gembus_cli(
            cast.server.env, "authorization", "settings", "set", "slw-evsp", "--fallback", "deny"
        )


# --------------------------------------------------------------------------- purchased services


def test_purchased_services_from_the_stored_list_and_the_live_evsp(cast: Cast) -> None:
    stored = cast.operator().GetPurchasedServices(
        operatorId="DE*ICE", evseId=EVSE, contractId=TNM_CONTRACT
    )
    assert (stored.reason, stored.providerId) == ("OK", "NL-TNM")
    assert [s.serviceCode for s in stored.services.service] == [None, "Reservation", "Co2Reporting"]
    live = cast.operator().GetPurchasedServices(operatorId="DE*ICE", contractId=LIV_ACTIVE)
    assert [s.serviceType for s in live.services.service] == ["charging", "reservation"]
    locked = cast.operator().GetPurchasedServices(operatorId="DE*ICE", contractId=TNM_BLOCKED)
    assert (locked.reason, locked.oicpStatusCode, locked.services) == (
        "CONTRACT_LOCKED",
        "200",
        None,
    )
    with pytest.raises(zeep.exceptions.Fault) as raised:
        cast.operator().GetPurchasedServices(
            operatorId="DE*ICE", evseId="DE*BMW*E1", contractId=TNM_CONTRACT
        )
    assert raised.value.code.endswith("Client.NotAuthorized")


# --------------------------------------------------------------------------- the audit


def _decisions(cast: Cast, who: tuple[str, str], **filters: Any) -> list[Any]:
    now = datetime.now(UTC)
    page = client(cast.server.base_url, "authorization", *who).GetAuthorizationDecisions(
        period={"start": now - timedelta(hours=1), "end": now + timedelta(minutes=1)},
        paging={"page": 1, "pageSize": 1000},
        **filters,
    )
    return list(page.decision)


def test_both_parties_see_their_own_decisions_and_nobody_elses(cast: Cast) -> None:
    session = ask(cast.operator(), LIV_ACTIVE, partnerSessionId="ICE-audit").sessionId
    ice = _decisions(cast, ICE)
    assert session in {d.sessionId for d in ice}
    assert all(d.operatorId == "DE*ICE" or d.reason == "CALLER_MISMATCH" for d in ice)
    liv = _decisions(cast, cast.login("liv-evsp"))
    assert session in {d.sessionId for d in liv}
    assert {d.providerId for d in liv} == {"IT-LIV"}
    tnm = _decisions(cast, TNM)
    assert (
        tnm
        and {d.providerId for d in tnm} == {"NL-TNM"}
        and session not in {d.sessionId for d in tnm}
    )
    opr = _decisions(cast, cast.login("opr-cpo"))
    assert opr and {d.operatorId for d in opr} == {"IT*OPR"}
    assert not {d.sessionId for d in opr} & {d.sessionId for d in ice}
    assert [d.sessionId for d in _decisions(cast, ICE, result="NotRoaming")] == []
    with pytest.raises(zeep.exceptions.Fault) as raised:
        _decisions(cast, TNM, operatorId="DE*ICE")
    assert raised.value.code.endswith("Client.NotAuthorized")


# --------------------------------------------------------------------------- customer contracts


def test_an_evsp_uploads_and_reads_back_its_customer_contracts(cast: Cast) -> None:
    liv = cast.login("liv-evsp")
    contracts = client(cast.server.base_url, "customer_contracts", *liv)
    records = [
        {
            "contractId": emaid("IT-LIV", f"C0000010{i}"),
            "status": "active",
            "validity": {"validFrom": datetime(2024, 1, 1, tzinfo=UTC)},
        }
        for i in range(3)
    ]
    records[0]["tokens"] = {
        "token": [{"instance": "9F86D081", "tokenType": "rfid", "representation": "plain"}]
    }
    answer = contracts.UploadCustomerContracts(
        providerId="IT-LIV", uploadId="liv-1", mode="delta", contracts={"contract": records}
    )
    assert (answer.status, answer.counts.applied, answer.counts.storedTotal) == ("applied", 3, 3)
    assert [r.result for r in answer.recordResult] == ["created"] * 3
    again = contracts.UploadCustomerContracts(
        providerId="IT-LIV", uploadId="liv-1", mode="delta", contracts={"contract": records[:1]}
    )
    assert again.status == "duplicate" and len(again.recordResult) == 3
    page = contracts.GetCustomerContracts(providerId="IT-LIV", paging={"page": 2, "pageSize": 2})
    assert page.pageInfo.totalCount == 3 and [
        c.contract.contractId for c in page.customerContract
    ] == [records[2]["contractId"]]
    assert page.customerContract[0].uploadId == "liv-1"
    with pytest.raises(zeep.exceptions.Fault) as raised:
        contracts.GetCustomerContracts(providerId="NL-TNM")
    assert raised.value.code.endswith("Client.NotAuthorized")
