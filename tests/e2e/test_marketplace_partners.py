"""Partner registration and lookup end to end: zeep -> gunicorn -> gembus -> PostgreSQL."""

from __future__ import annotations

import pytest
import zeep.exceptions

from tests.e2e.conftest import LiveServer
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

ADMIN = ("gembus-admin", "demo-admin-password")
OPERATOR = ("ice-charging", "demo-operator-password")


def _partner(partner_id: str, operator_id: str) -> dict[str, object]:
    return {
        "partnerId": partner_id,
        "data": {
            "legalName": f"{partner_id} S.p.A.",
            "roles": {"role": ["EvseOperator"]},
            "operatorIds": {"operatorId": [operator_id]},
            "contact": {"email": f"ops@{partner_id}.example", "telephone": "+39 06 1234567"},
            "address": {
                "country": "IT",
                "city": "Roma",
                "postalCode": "00184",
                "street": "Via Nazionale",
            },
        },
        "password": "a-long-enough-password",
    }


def test_operator_registers_a_partner_that_can_then_call_with_its_own_credentials(
    live_server: LiveServer,
) -> None:
    admin = client(live_server.base_url, "marketplace", *ADMIN)
    created = admin.RegisterPartner(**_partner("enel-x-roma", "IT*ENX"))
    assert created.status == "active"
    assert created.data.operatorIds.operatorId == ["IT*ENX"]

    newcomer = client(live_server.base_url, "marketplace", "enel-x-roma", "a-long-enough-password")
    fetched = newcomer.GetPartner(partnerId="enel-x-roma")
    assert fetched.data.address.city == "Roma"
    assert fetched.createdAt == created.createdAt


def test_soap12_port_answers_the_same(live_server: LiveServer) -> None:
    service = client(live_server.base_url, "marketplace", *OPERATOR, soap12=True)
    assert service.GetPartner(partnerId="tnm-mobility").data.providerIds.providerId == ["NL-TNM"]


def test_list_partners_is_paged_and_filtered(live_server: LiveServer) -> None:
    service = client(live_server.base_url, "marketplace", *OPERATOR)
    first = service.ListPartners(paging={"page": 1, "pageSize": 2})
    second = service.ListPartners(paging={"page": 2, "pageSize": 2})
    assert first.pageInfo.totalCount == second.pageInfo.totalCount >= 6
    ids = [p.partnerId for p in first.partner] + [p.partnerId for p in second.partner]
    assert ids == sorted(ids) and len(set(ids)) == 4
    evsps = service.ListPartners(role="Evsp")
    assert {p.partnerId for p in evsps.partner} >= {"tnm-mobility", "bmw-emobility"}
    assert all("Evsp" in p.data.roles.role for p in evsps.partner)


@pytest.mark.parametrize(
    ("caller", "change", "code", "field"),
    [
        (OPERATOR, {}, "Client.NotAuthorized", None),
        (ADMIN, {"partnerId": "ice-charging"}, "Client.DuplicatePartner", "partnerId"),
        (
            ADMIN,
            {"operatorIds": "de*ice"},
            "Client.DuplicateIdentifier",
            "data/operatorIds/operatorId[1]",
        ),
        (
            ADMIN,
            {"operatorIds": "+99*123"},
            "Client.InvalidIdentifier",
            "data/operatorIds/operatorId[1]",
        ),
        (ADMIN, {"roles": "Evsp"}, "Client.MissingIdentifier", "data/providerIds"),
    ],
)
def test_rule_violations_are_declared_faults_naming_the_field(
    live_server: LiveServer,
    caller: tuple[str, str],
    change: dict[str, str],
    code: str,
    field: str | None,
) -> None:
    request = _partner("rule-case", "IT*RUL")
    data = request["data"]
    assert isinstance(data, dict)
    if "partnerId" in change:
        request["partnerId"] = change["partnerId"]
    if "operatorIds" in change:
        data["operatorIds"] = {"operatorId": [change["operatorIds"]]}
    if "roles" in change:
        data["roles"] = {"role": [change["roles"]]}
        data.pop("operatorIds")
    service = client(live_server.base_url, "marketplace", *caller)
    with pytest.raises(zeep.exceptions.Fault) as raised:
        service.RegisterPartner(**request)
    detail = raised.value.detail[0]
    assert detail.findtext("{urn:gembus:common:v1}code") == code
    assert detail.findtext("{urn:gembus:common:v1}field") == field
    assert detail.findtext("{urn:gembus:common:v1}messageId")
    # nothing half-written survives the failed request
    assert (
        client(live_server.base_url, "marketplace", *ADMIN)
        .ListPartners(status="active")
        .pageInfo.totalCount
        >= 6
    )
    with pytest.raises(zeep.exceptions.Fault, match="no partner rule-case"):
        client(live_server.base_url, "marketplace", *ADMIN).GetPartner(partnerId="rule-case")


def test_wrong_password_and_replay_are_authentication_faults(live_server: LiveServer) -> None:
    with pytest.raises(zeep.exceptions.Fault) as raised:
        client(live_server.base_url, "marketplace", "ice-charging", "not-the-password").GetPartner(
            partnerId="ice-charging"
        )
    assert raised.value.code.endswith("Client.Authentication")


def test_self_registration_is_pending_until_the_operator_approves(live_server: LiveServer) -> None:
    anonymous = client(live_server.base_url, "marketplace")
    request = _partner("self-signup", "ES*SLF")
    pending = anonymous.RegisterPartner(**request)
    assert pending.status == "pending"
    own = client(live_server.base_url, "marketplace", "self-signup", "a-long-enough-password")
    with pytest.raises(zeep.exceptions.Fault, match="not active"):
        own.GetPartner(partnerId="self-signup")
    admin = client(live_server.base_url, "marketplace", *ADMIN)
    assert admin.ApprovePartner(partnerId="self-signup").status == "active"
    assert own.GetPartner(partnerId="self-signup").status == "active"
    with pytest.raises(zeep.exceptions.Fault) as raised:
        anonymous.GetPartner(partnerId="self-signup")  # only registration is anonymous
    assert raised.value.code.endswith("Client.Authentication")


def test_nobody_self_registers_as_marketplace_operator(live_server: LiveServer) -> None:
    request = _partner("fake-operator", "ES*FKO")
    request["data"]["roles"] = {"role": ["EvseOperator", "MarketplaceOperator"]}  # type: ignore[index]
    with pytest.raises(zeep.exceptions.Fault) as raised:
        client(live_server.base_url, "marketplace").RegisterPartner(**request)
    assert raised.value.code.endswith("Client.NotAuthorized")
