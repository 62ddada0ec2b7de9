"""Customer contracts and roaming authorization on PostgreSQL and SQLite, through the WSGI app.

Every request is a real SOAP envelope with a WS-Security UsernameToken through the whole
pipeline (guard, digest + nonce, XSD validation in and out); the answers are read from the
response XML.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from lxml import etree
from sqlalchemy import text

from domain.clearing.authorization import (
    AuthorizationMode,
    LiveFallback,
    reset_settings,
    set_settings,
    settings_of,
)
from domain.clearing.customer_contracts import UploadInProgressError
from gembus.bootstrap import Gembus, build
from gembus.errors import InvalidValueError
from gembus.settings import Settings
from tests.support.marketplace import partner, roaming_agreement
from tests.support.soap import WsgiResult, call, envelope, wsse_header

CC = "urn:gembus:customer-contracts:v1"
AZ = "urn:gembus:authorization:v1"
CMN = "urn:gembus:common:v1"
RM = "urn:gembus:roaming:v1"
ICE = ("ice-charging", "demo-operator-password")
TNM = ("tnm-mobility", "demo-evsp-password")
BMW = ("bmw-emobility", "demo-evsp2-password")
NOW = datetime.now(UTC)
CONTRACT = "NL-TNM-000122045-U"
DIN_FORM = "NL-TNM-012204-5"
BLOCKED = "NL-TNM-C00000002-N"
OTHER = "NL-TNM-C00000001-Q"


def soap(
    gembus: Gembus, family: str, operation: str, body: str, user: tuple[str, str]
) -> WsgiResult:
    ns = CC if family == "customer_contracts" else AZ
    return call(
        gembus.app,
        envelope(body, wsse_header(*user)),
        path=f"/services/{family}",
        action=f"{ns}/{operation}",
    )


def answer(result: WsgiResult) -> etree._Element:
    assert result.status == 200, result.text
    root = etree.fromstring(result.body)
    return root[-1][0]


def values(element: etree._Element, path: str) -> list[str]:
    return [
        str(v) for v in element.xpath(path, namespaces={"cc": CC, "az": AZ, "cmn": CMN, "rm": RM})
    ]


def contract_xml(
    contract_id: str, status: str = "active", uid: str | None = None, services: str = ""
) -> str:
    tokens = (
        f"<rm:tokens><rm:token><cmn:instance>{uid}</cmn:instance><cmn:tokenType>rfid</cmn:tokenType>"
        "</rm:token></rm:tokens>"
        if uid
        else ""
    )
    return (
        f"<cc:contract><rm:contractId>{contract_id}</rm:contractId><rm:status>{status}</rm:status>"
        f"<rm:validity><cmn:validFrom>{(NOW - timedelta(days=1)).isoformat()}</cmn:validFrom>"
        f"<cmn:validTo>{(NOW + timedelta(days=365)).isoformat()}</cmn:validTo></rm:validity>"
        f"{tokens}{services}</cc:contract>"
    )


def upload(
    gembus: Gembus,
    contracts_xml: str,
    *,
    mode: str = "delta",
    upload_id: str | None = None,
    chunk: tuple[int, int] | None = None,
    deletions: tuple[str, ...] = (),
    provider: str = "NL-TNM",
    user: tuple[str, str] = TNM,
) -> WsgiResult:
    parts = [f"<cc:providerId>{provider}</cc:providerId>"]
    if upload_id:
        parts.append(f"<cc:uploadId>{upload_id}</cc:uploadId>")
    parts.append(f"<cc:mode>{mode}</cc:mode>")
    if chunk:
        parts.append(
            f"<cc:chunk><cc:index>{chunk[0]}</cc:index><cc:count>{chunk[1]}</cc:count></cc:chunk>"
        )
    if contracts_xml:
        parts.append(f"<cc:contracts>{contracts_xml}</cc:contracts>")
    if deletions:
        parts.append(
            "<cc:deletions>"
            + "".join(f"<cc:contractId>{d}</cc:contractId>" for d in deletions)
            + "</cc:deletions>"
        )
    body = (
        f'<cc:UploadCustomerContracts xmlns:cc="{CC}" xmlns:rm="{RM}" xmlns:cmn="{CMN}">'
        + "".join(parts)
        + "</cc:UploadCustomerContracts>"
    )
    return soap(gembus, "customer_contracts", "UploadCustomerContracts", body, user)


def results_of(element: etree._Element) -> list[tuple[str, str]]:
    return list(
        zip(
            values(element, "cc:recordResult/cc:contractId/text()"),
            values(element, "cc:recordResult/cc:result/text()"),
            strict=True,
        )
    )


def stored(
    gembus: Gembus, user: tuple[str, str] = TNM, filters: str = "", page: int = 1, size: int = 100
) -> etree._Element:
    body = (
        f'<cc:GetCustomerContracts xmlns:cc="{CC}" xmlns:cmn="{CMN}">{filters}'
        f"<cc:paging><cmn:page>{page}</cmn:page><cmn:pageSize>{size}</cmn:pageSize></cc:paging>"
        "</cc:GetCustomerContracts>"
    )
    return answer(soap(gembus, "customer_contracts", "GetCustomerContracts", body, user))


def authorize(
    gembus: Gembus,
    contract_id: str | None = CONTRACT,
    *,
    psid: str | None = None,
    uid: str | None = None,
    evse: str = "DE*ICE*E123456*7",
    raw: bytes | None = None,
) -> WsgiResult:
    parts = [f"<az:operatorId>DE*ICE</az:operatorId><az:evseId>{evse}</az:evseId>"]
    if contract_id:
        parts.append(f"<az:contractId>{contract_id}</az:contractId>")
    if uid:
        parts.append(
            f"<az:token><cmn:instance>{uid}</cmn:instance><cmn:tokenType>rfid</cmn:tokenType></az:token>"
        )
    if psid:
        parts.append(f"<az:partnerSessionId>{psid}</az:partnerSessionId>")
    body = f'<az:AuthorizeRoaming xmlns:az="{AZ}" xmlns:cmn="{CMN}">{"".join(parts)}</az:AuthorizeRoaming>'
    if raw is not None:
        return call(
            gembus.app, raw, path="/services/authorization", action=f"{AZ}/AuthorizeRoaming"
        )
    return soap(gembus, "authorization", "AuthorizeRoaming", body, ICE)


def outcome(result: WsgiResult) -> tuple[str, str, str]:
    element = answer(result)
    return (
        values(element, "az:result/text()")[0],
        values(element, "az:reason/text()")[0],
        values(element, "az:decisionSource/text()")[0],
    )


def decisions(
    gembus: Gembus, user: tuple[str, str], filters: str = "", days: int = 1
) -> WsgiResult:
    body = (
        f'<az:GetAuthorizationDecisions xmlns:az="{AZ}" xmlns:cmn="{CMN}"><az:period>'
        f"<cmn:start>{(NOW - timedelta(hours=1)).isoformat()}</cmn:start>"
        f"<cmn:end>{(NOW - timedelta(hours=1) + timedelta(days=days)).isoformat()}</cmn:end>"
        f"</az:period>{filters}</az:GetAuthorizationDecisions>"
    )
    return soap(gembus, "authorization", "GetAuthorizationDecisions", body, user)


def agreement(gembus: Gembus) -> None:
    ice = partner(gembus.uow, "ice-charging")
    roaming_agreement(gembus.uow, ice, "DE*ICE", "NL-TNM", NOW - timedelta(days=1))


def count_decisions(gembus: Gembus) -> int:
    with gembus.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM authorization_decision")).scalar_one()
        )


# --------------------------------------------------------------------------- customer contracts


def test_delta_uploads_are_applied_record_by_record_and_read_back_by_their_owner(
    gembus: Gembus,
) -> None:
    first = answer(
        upload(
            gembus,
            contract_xml(CONTRACT, uid="4F2A19C3")
            + contract_xml(DIN_FORM)
            + contract_xml(BLOCKED, "blocked")
            + contract_xml(OTHER),
            upload_id="u1",
        )
    )
    assert values(first, "cc:status/text()") == ["applied"]
    assert results_of(first) == [
        (CONTRACT, "created"),
        (DIN_FORM, "rejected"),
        (BLOCKED, "created"),
        (OTHER, "created"),
    ]
    assert values(first, "cc:recordResult[2]/cc:reasonCode/text()") == ["DUPLICATE_IN_UPLOAD"]
    assert values(first, "cc:counts/*/text()") == ["4", "3", "1", "3"]

    repeat = answer(upload(gembus, contract_xml(OTHER), upload_id="u1"))
    assert values(repeat, "cc:status/text()") == ["duplicate"]
    assert results_of(repeat) == results_of(first), "the original results, nothing applied"

    second = answer(
        upload(
            gembus,
            contract_xml(CONTRACT, uid="4F2A19C3") + contract_xml(BLOCKED),
            deletions=(OTHER, "NL-TNM-C00000003-P"),
        )
    )
    assert results_of(second) == [
        (CONTRACT, "unchanged"),
        (BLOCKED, "updated"),
        (OTHER, "deleted"),
        ("NL-TNM-C00000003-P", "notFound"),
    ]

    page_one = stored(gembus, size=1)
    assert values(page_one, "cc:pageInfo/cmn:totalCount/text()") == ["2"]
    assert values(page_one, "cc:customerContract/cc:contract/rm:contractId/text()") == [CONTRACT]
    assert values(
        stored(gembus, page=2, size=1), "cc:customerContract/cc:contract/rm:status/text()"
    ) == ["active"]
    by_din = stored(gembus, filters=f"<cc:contractId>{DIN_FORM}</cc:contractId>")
    assert values(by_din, "cc:customerContract/cc:contract/rm:contractId/text()") == [CONTRACT]
    assert values(
        by_din, "cc:customerContract/cc:contract/rm:tokens/rm:token/cmn:instance/text()"
    ) == ["4F2A19C3"]
    assert values(stored(gembus, BMW), "cc:pageInfo/cmn:totalCount/text()") == ["0"]
    refused = soap(
        gembus,
        "customer_contracts",
        "GetCustomerContracts",
        f'<cc:GetCustomerContracts xmlns:cc="{CC}"><cc:providerId>NL-TNM</cc:providerId></cc:GetCustomerContracts>',
        BMW,
    )
    assert refused.fault_code() == "Client.NotAuthorized"


def test_a_full_upload_in_chunks_replaces_the_list_when_the_last_chunk_arrives(
    gembus: Gembus,
) -> None:
    answer(upload(gembus, contract_xml(OTHER) + contract_xml(BLOCKED, "blocked")))
    first = answer(
        upload(gembus, contract_xml(CONTRACT), mode="full", upload_id="full-1", chunk=(2, 2))
    )
    assert values(first, "cc:status/text()") == ["awaitingChunks"]
    assert values(stored(gembus), "cc:customerContract/cc:contract/rm:contractId/text()") == [
        OTHER,
        BLOCKED,
    ]
    changed = upload(gembus, contract_xml(BLOCKED), mode="full", upload_id="full-1", chunk=(1, 3))
    assert changed.fault_code() == "Client.InvalidChunk"
    assert upload(gembus, "", mode="full", chunk=(1, 2)).fault_code() == "Client.MissingIdentifier"
    last = answer(
        upload(
            gembus, contract_xml(BLOCKED, "blocked"), mode="full", upload_id="full-1", chunk=(1, 2)
        )
    )
    assert values(last, "cc:status/text()") == ["applied"]
    assert values(last, "cc:counts/cc:storedTotal/text()") == ["2"]
    assert results_of(last) == [(BLOCKED, "unchanged")]
    assert values(stored(gembus), "cc:customerContract/cc:contract/rm:contractId/text()") == [
        CONTRACT,
        BLOCKED,
    ]
    again = answer(
        upload(gembus, contract_xml(OTHER), mode="full", upload_id="full-1", chunk=(2, 2))
    )
    assert values(again, "cc:status/text()") == ["duplicate"]
    deletion = answer(upload(gembus, "", mode="full", deletions=(CONTRACT,)))
    assert values(deletion, "cc:recordResult/cc:reasonCode/text()") == ["DELETION_IN_FULL_UPLOAD"]
    assert values(deletion, "cc:counts/cc:storedTotal/text()") == ["0"], (
        "a full upload without contracts empties the list"
    )


def test_tokens_and_providers_are_checked_against_the_store(gembus: Gembus) -> None:
    answer(upload(gembus, contract_xml(CONTRACT, uid="4F2A19C3")))
    conflict = answer(upload(gembus, contract_xml(OTHER, uid="4f2a19c3")))
    assert values(conflict, "cc:recordResult/cc:reasonCode/text()") == ["TOKEN_CONFLICT"]
    moved = answer(upload(gembus, contract_xml(OTHER, uid="4F2A19C3"), deletions=(CONTRACT,)))
    assert results_of(moved) == [(OTHER, "created"), (CONTRACT, "deleted")]
    assert (
        upload(gembus, contract_xml(OTHER), provider="DE-BMW").fault_code()
        == "Client.NotAuthorized"
    )
    foreign = answer(upload(gembus, contract_xml("DE*BMW*0010LY*3"), provider="DE-BMW", user=BMW))
    assert results_of(foreign) == [("DE*BMW*0010LY*3", "created")]
    wrong = answer(upload(gembus, contract_xml("DE*BMW*0010LY*3"), provider="NL-TNM"))
    assert values(wrong, "cc:recordResult/cc:reasonCode/text()") == ["EVCO_INCONSISTENT"]


# --------------------------------------------------------------------------- authorization


def test_decisions_are_recorded_once_and_repeats_return_them(gembus: Gembus) -> None:
    agreement(gembus)
    answer(
        upload(gembus, contract_xml(CONTRACT, uid="4F2A19C3") + contract_xml(BLOCKED, "blocked"))
    )
    first = answer(authorize(gembus, psid="ICE-1", uid="4F2A19C3"))
    assert values(
        first, "az:result/text()|az:reason/text()|az:oicpStatusCode/text()|az:decisionSource/text()"
    ) == ["Authorized", "OK", "000", "storedList"]
    assert values(first, "az:providerId/text()") == ["NL-TNM"]
    assert values(first, "az:authorizationStopIdentifications/az:contractId/text()") == [CONTRACT]
    session = values(first, "az:sessionId/text()")[0]
    repeat = answer(authorize(gembus, psid="ICE-1", uid="4F2A19C3"))
    assert values(repeat, "az:sessionId/text()|az:decisionSource/text()") == [
        session,
        "storedDecision",
    ]
    assert outcome(authorize(gembus, BLOCKED, psid="ICE-1"))[1] == "CONTRACT_LOCKED", (
        "other content: a new decision"
    )
    assert outcome(authorize(gembus, "NL-TNM-C00000009-2"))[1] == "NO_CONTRACT"
    assert outcome(authorize(gembus, None, uid="4F2A19C3"))[:2] == ("Authorized", "OK")
    assert outcome(authorize(gembus, None, uid="FFFF0000"))[1] == "RFID_UNKNOWN"
    assert count_decisions(gembus) == 5
    with gembus.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT repeats, caller_partner_id, provider_partner_id, latency_ms FROM authorization_decision WHERE session_id = :s"
            ),
            {"s": session},
        ).one()
    assert (row[0], row[1], row[2]) == (1, "ice-charging", "tnm-mobility") and row[3] >= 0


def test_a_replayed_request_is_refused_and_writes_nothing(gembus: Gembus) -> None:
    agreement(gembus)
    body = f'<az:AuthorizeRoaming xmlns:az="{AZ}"><az:operatorId>DE*ICE</az:operatorId><az:evseId>DE*ICE*E1</az:evseId><az:contractId>{CONTRACT}</az:contractId></az:AuthorizeRoaming>'
    raw = envelope(body, wsse_header(*ICE))
    assert outcome(authorize(gembus, raw=raw))[1] == "NO_CONTRACT"
    replayed = authorize(gembus, raw=raw)
    assert replayed.fault_code() == "Client.Authentication" and "replayed" in replayed.text
    assert count_decisions(gembus) == 1
    neither = f'<az:AuthorizeRoaming xmlns:az="{AZ}"><az:operatorId>DE*ICE</az:operatorId><az:evseId>DE*ICE*E1</az:evseId></az:AuthorizeRoaming>'
    refused = envelope(neither, wsse_header(*ICE))
    assert authorize(gembus, raw=refused).fault_code() == "Client.MissingIdentifier"
    spent = authorize(gembus, raw=refused).fault_code()
    assert spent == "Client.Authentication", "a refused request's nonce is spent too"
    assert (
        soap(gembus, "authorization", "AuthorizeRoaming", body, TNM).fault_code()
        == "Client.NotAuthorized"
    )


def test_an_upload_is_seen_by_the_very_next_decision_of_another_process(
    gembus: Gembus, database_url: str
) -> None:
    agreement(gembus)
    answer(upload(gembus, contract_xml(CONTRACT)))
    other = build(
        Settings(
            database_url=database_url, secret_key=gembus.settings.secret_key, log_level="WARNING"
        )
    )
    try:
        assert outcome(authorize(other))[1] == "OK"  # its cache now holds the contract
        answer(upload(gembus, contract_xml(CONTRACT, "blocked")))
        assert outcome(authorize(other))[1] == "CONTRACT_LOCKED"
    finally:
        other.engine.dispose()


def test_each_party_sees_only_its_own_decisions(gembus: Gembus) -> None:
    agreement(gembus)
    answer(upload(gembus, contract_xml(CONTRACT)))
    authorize(gembus)
    authorize(gembus, "DE*BMW*0010LY*3")
    ice = answer(decisions(gembus, ICE))
    assert values(ice, "az:pageInfo/cmn:totalCount/text()") == ["2"]
    assert values(ice, "az:decision/az:reason/text()") == ["OK", "NO_ROAMING_AGREEMENT"]
    tnm = answer(decisions(gembus, TNM))
    assert values(tnm, "az:decision/az:contractId/text()") == [CONTRACT]
    bmw = answer(decisions(gembus, BMW, "<az:result>NotAuthorized</az:result>"))
    assert values(bmw, "az:decision/az:evseId/text()") == ["DE*ICE*E123456*7"], "BMW is that EVSP"
    filtered = answer(decisions(gembus, ICE, "<az:result>Authorized</az:result>"))
    assert values(filtered, "az:decision/az:sessionId/text()") == values(
        tnm, "az:decision/az:sessionId/text()"
    )
    assert (
        decisions(gembus, TNM, "<az:operatorId>DE*ICE</az:operatorId>").fault_code()
        == "Client.NotAuthorized"
    )
    assert decisions(gembus, ICE, days=40).fault_code() == "Client.InvalidPeriod"
    admin = answer(decisions(gembus, ("gembus-admin", "demo-admin-password")))
    assert values(admin, "az:pageInfo/cmn:totalCount/text()") == ["2"]


def test_purchased_services_come_from_the_stored_contract(gembus: Gembus) -> None:
    agreement(gembus)
    services = '<rm:entitledServices><rm:service><rm:serviceType>reservation</rm:serviceType><rm:serviceCode>Reservation</rm:serviceCode><rm:name lang="en">Reservation</rm:name></rm:service></rm:entitledServices>'
    answer(upload(gembus, contract_xml(CONTRACT, services=services) + contract_xml(OTHER)))

    def ask(contract_id: str, evse: str = "DE*ICE*E1") -> WsgiResult:
        body = f'<az:GetPurchasedServices xmlns:az="{AZ}"><az:operatorId>DE*ICE</az:operatorId><az:evseId>{evse}</az:evseId><az:contractId>{contract_id}</az:contractId></az:GetPurchasedServices>'
        return soap(gembus, "authorization", "GetPurchasedServices", body, ICE)

    rich = answer(ask(CONTRACT))
    assert values(rich, "az:reason/text()|az:services/rm:service/rm:serviceCode/text()") == [
        "OK",
        "Reservation",
    ]
    assert values(rich, "az:services/rm:service/rm:name/@lang") == ["en"]
    plain = answer(ask(OTHER))
    assert values(plain, "az:services/rm:service/rm:serviceType/text()") == ["charging"]
    assert values(answer(ask(BLOCKED)), "az:reason/text()") == ["NO_CONTRACT"]
    assert ask(CONTRACT, evse="DE*BMW*E1").fault_code() == "Client.NotAuthorized"


def test_authorization_settings_default_and_follow_the_evsps_choice(gembus: Gembus) -> None:
    with gembus.uow() as uow:
        assert settings_of(uow, "tnm-mobility").mode is AuthorizationMode.STORED_LIST
        set_settings(
            uow,
            "tnm-mobility",
            mode=AuthorizationMode.LIVE_EVSP,
            live_timeout_ms=800,
            fallback=None,
            actor="t",
            at=NOW,
        )
        set_settings(
            uow,
            "tnm-mobility",
            mode=None,
            live_timeout_ms=None,
            fallback=LiveFallback.STORED_LIST,
            actor="t",
            at=NOW,
        )
        uow.commit()
    with gembus.uow() as uow:
        chosen = settings_of(uow, "tnm-mobility")
        assert (chosen.mode, chosen.live_timeout_ms, chosen.fallback) == (
            AuthorizationMode.LIVE_EVSP,
            800,
            LiveFallback.STORED_LIST,
        )
        assert [s.partner_id for s in uow.authorizations.all_settings()] == ["tnm-mobility"]
        with pytest.raises(InvalidValueError):
            set_settings(
                uow,
                "ice-charging",
                mode=AuthorizationMode.LIVE_EVSP,
                live_timeout_ms=None,
                fallback=None,
                actor="t",
                at=NOW,
            )
        with pytest.raises(InvalidValueError):
            set_settings(
                uow, "tnm-mobility", mode=None, live_timeout_ms=10, fallback=None, actor="t", at=NOW
            )
        reset_settings(uow, "tnm-mobility")
        uow.commit()
    with gembus.uow() as uow:
        assert settings_of(uow, "tnm-mobility").updated_at is None


def test_the_sample_messages_of_the_contract_are_served(gembus: Gembus) -> None:
    """The canonical sample upload (delta with a DIN duplicate and a deletion) as sent."""
    from tests.conftest import REPO

    sample = (
        REPO / "tests/fixtures/requests/customer_contracts/UploadCustomerContracts.xml"
    ).read_text()
    body = re.sub(r"<\?xml[^>]*\?>", "", sample)
    result = answer(soap(gembus, "customer_contracts", "UploadCustomerContracts", body, TNM))
    assert results_of(result) == [
        (CONTRACT, "created"),
        (DIN_FORM, "rejected"),
        ("NLTNMC00417733M", "notFound"),
    ]
    assert partner(gembus.uow, "tnm-mobility").partner_id == "tnm-mobility"


def test_uploads_of_one_provider_wait_for_each_other_and_give_up_in_time(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row locks are PostgreSQL's (SQLite has one writer at a time anyway)."""
    from persistence import clearing_authorization
    from persistence.migrate import upgrade

    monkeypatch.setattr(clearing_authorization, "UPLOAD_LOCK_TIMEOUT", "200ms")
    gembus = build(
        Settings(
            database_url=postgres_url,
            secret_key=Fernet.generate_key().decode(),
            log_level="WARNING",
        )
    )
    upgrade(gembus.engine)
    try:
        with gembus.uow() as first:
            first.customer_contracts.lock_provider("NLTNM", "tnm-mobility")
            first.commit()  # the provider's lock row exists from now on
        with gembus.uow() as first, gembus.uow() as second:
            first.customer_contracts.lock_provider("NLTNM", "tnm-mobility")
            with pytest.raises(UploadInProgressError):
                second.customer_contracts.lock_provider("NLTNM", "tnm-mobility")
            second.customer_contracts.session.rollback()
            with gembus.uow() as other_provider:
                other_provider.customer_contracts.lock_provider("DEBMW", "bmw-emobility")
    finally:
        gembus.engine.dispose()
