"""The fake live EVSP (tests/fakes/evsp_auth.py) speaks the canonical authorization contract.

No sockets: the WSGI app is called in-process and every answer Body is validated against the
compiled authorization schema gembus itself uses.
"""

from __future__ import annotations

from lxml import etree

from bus.contracts import all_contracts
from bus.soap import SOAP11_ENV
from domain.identifiers import emaid_check_digit
from tests.fakes.evsp_auth import EvspApp
from tests.support.soap import call, envelope

AZ = "urn:gembus:authorization:v1"
CMN = "urn:gembus:common:v1"
ACTIVE = f"IT-LIV-C00000001-{emaid_check_digit('ITLIVC00000001')}"
BLOCKED = f"IT-LIV-C00000002-{emaid_check_digit('ITLIVC00000002')}"
SCHEMA = all_contracts()["authorization"].schema


def fake() -> EvspApp:
    return EvspApp("IT-LIV", [f"{ACTIVE}=active:AB12", f"{BLOCKED}=blocked"])


def answer(app: EvspApp, body: str, operation: str) -> etree._Element:
    result = call(app, envelope(body), path="/evsp/authorization", action=f"{AZ}/{operation}")
    root = etree.fromstring(result.body)
    body_element = root.find(f"{{{SOAP11_ENV}}}Body")
    assert body_element is not None
    child = body_element[0]
    if result.status == 200:
        assert SCHEMA.validate(child), SCHEMA.error_log.last_error
    return child


def authorize(contract: str | None, token: str | None = None, session: str = "auth-1") -> str:
    parts = ["<az:operatorId>DE*ICE</az:operatorId><az:evseId>DE*ICE*E1</az:evseId>"]
    if contract:
        parts.append(f"<az:contractId>{contract}</az:contractId>")
    if token:
        parts.append(
            f"<az:token><cmn:instance>{token}</cmn:instance><cmn:tokenType>rfid</cmn:tokenType>"
            "</az:token>"
        )
    parts.append(f"<az:sessionId>{session}</az:sessionId>")
    return f'<az:AuthorizeRoaming xmlns:az="{AZ}" xmlns:cmn="{CMN}">{"".join(parts)}</az:AuthorizeRoaming>'


def text(element: etree._Element, name: str) -> str | None:
    return element.findtext(f"{{{AZ}}}{name}")


def test_it_answers_for_its_own_contracts_and_echoes_the_session() -> None:
    app = fake()
    ok = answer(app, authorize(ACTIVE, "AB12", "auth-42"), "AuthorizeRoaming")
    assert (text(ok, "result"), text(ok, "sessionId"), text(ok, "decisionSource")) == (
        "Authorized",
        "auth-42",
        "liveEvsp",
    )
    assert text(answer(app, authorize(BLOCKED), "AuthorizeRoaming"), "reason") == "CONTRACT_LOCKED"
    other = f"IT-LIX-C00000001-{emaid_check_digit('ITLIXC00000001')}"
    assert text(answer(app, authorize(other), "AuthorizeRoaming"), "reason") == "EVCO_INCONSISTENT"
    assert len(app.received) == 3


def test_a_token_alone_finds_its_contract_or_is_unknown() -> None:
    app = fake()
    found = answer(app, authorize(None, "ab12"), "AuthorizeRoaming")
    assert (text(found, "result"), text(found, "contractId")) == ("Authorized", ACTIVE)
    assert (
        text(answer(app, authorize(None, "FFFF"), "AuthorizeRoaming"), "reason") == "RFID_UNKNOWN"
    )


def test_purchased_services_and_the_audit_it_does_not_keep() -> None:
    app = fake()
    body = (
        f'<az:GetPurchasedServices xmlns:az="{AZ}"><az:operatorId>DE*ICE</az:operatorId>'
        f"<az:contractId>{ACTIVE}</az:contractId></az:GetPurchasedServices>"
    )
    services = answer(app, body, "GetPurchasedServices")
    assert text(services, "reason") == "OK"
    audit = (
        f'<az:GetAuthorizationDecisions xmlns:az="{AZ}" xmlns:cmn="{CMN}"><az:period>'
        "<cmn:start>2026-01-01T00:00:00Z</cmn:start><cmn:end>2026-01-02T00:00:00Z</cmn:end>"
        "</az:period></az:GetAuthorizationDecisions>"
    )
    fault = answer(app, audit, "GetAuthorizationDecisions")
    assert fault.findtext(f".//{{{CMN}}}code") == "Server.NotImplemented"
