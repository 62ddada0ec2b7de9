"""The marketplace buy flow end to end: zeep -> gunicorn -> gembus -> PostgreSQL.

A provider registers a service whose endpoint is gembus's own evse_search endpoint (so the
registration really fetches and compares a served WSDL), publishes and offers it; requesters
browse the catalogue, accept, see their contracts, usage and billing; roaming agreements are
recorded and ended. Every message is validated against the canonical XSD by the zeep plugin.
Partners created here get unique IDs, so the flow does not depend on what other tests wrote.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import zeep.exceptions

from tests.e2e.conftest import LiveServer
from tests.support.zeep_validation import client

pytestmark = pytest.mark.e2e

CMN = "{urn:gembus:common:v1}"
ADMIN = ("gembus-admin", "demo-admin-password")
PROVIDER = ("ice-charging", "demo-operator-password")
PASSWORD = "a-long-enough-password"


def _tag() -> str:
    return secrets.token_hex(4)


def _letters(n: int) -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(n))


def _fault(call: Callable[..., Any], **request: Any) -> tuple[str, str | None, str]:
    """Call, expect the declared GembusFault; returns (code, field, message) of its detail."""
    with pytest.raises(zeep.exceptions.Fault) as raised:
        call(**request)
    detail = raised.value.detail[0]
    assert detail.findtext(f"{CMN}messageId")
    return (
        str(detail.findtext(f"{CMN}code")),
        detail.findtext(f"{CMN}field"),
        str(detail.findtext(f"{CMN}message")),
    )


def _new_partner(
    server: LiveServer,
    role: str = "SearchProvider",
    *,
    operator_id: str | None = None,
    provider_id: str | None = None,
) -> tuple[str, Any]:
    """A fresh active partner registered by the marketplace operator, and its client."""
    partner_id = f"buyer-{_tag()}"
    data: dict[str, Any] = {
        "legalName": f"{partner_id} B.V.",
        "roles": {"role": [role]},
        "contact": {"email": f"ops@{partner_id}.example"},
    }
    if operator_id:
        data["operatorIds"] = {"operatorId": [operator_id]}
    if provider_id:
        data["providerIds"] = {"providerId": [provider_id]}
    client(server.base_url, "marketplace", *ADMIN).RegisterPartner(
        partnerId=partner_id, data=data, password=PASSWORD
    )
    return partner_id, client(server.base_url, "marketplace", partner_id, PASSWORD)


def _service_data(server: LiveServer, name: str, **change: Any) -> dict[str, Any]:
    data = {
        "name": name,
        "category": "BasicEndUser",
        "serviceInterface": {"family": "evse_search", "version": 1},
        "endpointUrl": f"{server.base_url}/services/evse_search",
        "description": "Find ICE charging points near a location",
    }
    return {**data, **change}


TERMS = {
    "pricePerCall": Decimal("0.0125"),
    "monthlyFee": Decimal("25.00"),
    "currency": "EUR",
    "callQuota": {"perDay": 1000, "overrunPricePerCall": Decimal("0.02")},
}


def _published_offering(server: LiveServer, name: str) -> tuple[Any, Any, Any]:
    """(provider client, service, offering): a published evse_search service with one offering."""
    provider = client(server.base_url, "marketplace", *PROVIDER)
    service = provider.RegisterService(data=_service_data(server, name))
    provider.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")
    offering = provider.CreateOffering(
        serviceId=service.serviceId,
        name="Standard",
        description="per call plus a monthly fee",
        terms=TERMS,
        validity={"validFrom": datetime.now(UTC) - timedelta(minutes=1)},
    )
    return provider, service, offering


def test_full_buy_flow(live_server: LiveServer) -> None:
    tag = _tag()
    name = f"ICE charge point finder {tag}"
    provider = client(live_server.base_url, "marketplace", *PROVIDER)
    requester_id, requester = _new_partner(live_server)

    # registration fetches /services/evse_search?wsdl and finds it canonical: a draft
    service = provider.RegisterService(data=_service_data(live_server, name))
    assert service.state == "draft" and service.providerPartnerId == "ice-charging"
    assert service.data.serviceInterface.family == "evse_search"
    assert service.data.serviceInterface.version == 1
    # drafts are the provider's own: not in the catalogue, unknown to others
    assert requester.BrowseCatalogue(text=tag).pageInfo.totalCount == 0
    code, field, _ = _fault(requester.GetService, serviceId=service.serviceId)
    assert (code, field) == ("Client.UnknownService", "serviceId")
    assert provider.GetService(serviceId=service.serviceId).state == "draft"

    published = provider.ChangeServiceLifecycle(
        serviceId=service.serviceId, targetState="published"
    )
    assert published.state == "published"
    offering = provider.CreateOffering(
        serviceId=service.serviceId,
        name="Standard",
        terms=TERMS,
        validity={"validFrom": datetime.now(UTC) - timedelta(minutes=1)},
    )
    assert offering.status == "open" and offering.providerPartnerId == "ice-charging"
    assert offering.terms.pricePerCall == Decimal("0.0125")
    assert offering.terms.monthlyFee == Decimal("25.00")
    assert offering.terms.callQuota.perDay == 1000

    # the requester finds it by category, family and text; other filters exclude it
    found = requester.BrowseCatalogue(
        category="BasicEndUser", serviceInterface={"family": "evse_search"}, text=tag.upper()
    )
    assert [s.serviceId for s in found.service] == [service.serviceId]
    assert found.pageInfo.totalCount == 1
    assert requester.BrowseCatalogue(category="ValueAdded", text=tag).pageInfo.totalCount == 0
    assert (
        requester.BrowseCatalogue(
            serviceInterface={"family": "power_modulation"}, text=tag
        ).pageInfo.totalCount
        == 0
    )
    offers = requester.ListOfferings(serviceId=service.serviceId)
    assert [o.offeringId for o in offers.offering] == [offering.offeringId]

    contract = requester.AcceptOffering(
        offeringId=offering.offeringId, requesterReference=f"PO-{tag}"
    )
    assert contract.status == "active"
    assert (contract.providerPartnerId, contract.requesterPartnerId) == (
        "ice-charging",
        requester_id,
    )
    assert contract.serviceName == name and contract.serviceInterface.family == "evse_search"
    assert contract.terms.monthlyFee == Decimal("25.00") and contract.terms.currency == "EUR"
    assert contract.requesterReference == f"PO-{tag}"
    contract_id = contract.serviceContractId

    # both parties list it, each on its own side
    mine = requester.ListMyContracts(role="requester")
    assert [c.serviceContractId for c in mine.contract] == [contract_id]
    assert requester.ListMyContracts(role="provider").pageInfo.totalCount == 0
    sold = provider.ListMyContracts(role="provider", serviceId=service.serviceId)
    assert [c.serviceContractId for c in sold.contract] == [contract_id]
    assert requester.GetContract(serviceContractId=contract_id).status == "active"

    # a third partner neither sees nor ends it
    third = client(live_server.base_url, "marketplace", "bmw-emobility", "demo-evsp2-password")
    assert _fault(third.GetContract, serviceContractId=contract_id)[:2] == (
        "Client.UnknownContract",
        "serviceContractId",
    )
    assert _fault(third.TerminateContract, serviceContractId=contract_id)[:2] == (
        "Client.UnknownContract",
        "serviceContractId",
    )

    # usage: no calls routed yet, one row per whole UTC day of the period
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    report = requester.GetUsageReport(
        serviceContractId=contract_id, period={"start": today, "end": today + timedelta(days=1)}
    )
    assert report.serviceContractId == contract_id and report.serviceId == service.serviceId
    assert (report.total.calls, report.total.faults, report.total.overQuotaCalls) == (0, 0, 0)
    assert report.total.meanLatencyMs is None
    assert (report.period.start, report.period.end) == (today, today + timedelta(days=1))
    # "one row per day of the period in date order, days without calls included"
    assert [(d.date, d.usage.calls) for d in report.days.day] == [(today.date(), 0)]
    two_days = requester.GetUsageReport(
        serviceContractId=contract_id,
        period={"start": today - timedelta(days=1), "end": today + timedelta(days=1)},
    )
    assert [d.date for d in two_days.days.day] == [
        (today - timedelta(days=1)).date(),
        today.date(),
    ]

    # billing: the monthly fee, payable by the requester, receivable by the provider
    month = (today.year, today.month, None)
    bill = requester.GetBillingStatement(partnerId=requester_id, month=month)
    assert bill.status == "provisional" and bill.month[:2] == month[:2]
    assert [(x.lineType, x.role, x.quantity, x.amount.amount) for x in bill.lines.line] == [
        ("monthlyFee", "requester", 1, Decimal("25.00"))
    ]
    assert bill.lines.line[0].counterpartPartnerId == "ice-charging"
    assert bill.lines.line[0].requesterReference == f"PO-{tag}"
    [total] = bill.totals.total
    assert (total.currency, total.payable, total.receivable, total.net) == (
        "EUR",
        Decimal("25.00"),
        Decimal("0"),
        Decimal("-25.00"),
    )
    provider_bill = provider.GetBillingStatement(partnerId="ice-charging", month=month)
    ours = [x for x in provider_bill.lines.line if x.serviceContractId == contract_id]
    assert [(x.role, x.amount.amount, x.counterpartPartnerId) for x in ours] == [
        ("provider", Decimal("25.00"), requester_id)
    ]
    assert _fault(requester.GetBillingStatement, partnerId="ice-charging", month=month)[:2] == (
        "Client.NotAuthorized",
        "partnerId",
    )
    next_year = (today.year + 1, today.month, None)
    assert _fault(requester.GetBillingStatement, partnerId=requester_id, month=next_year)[:2] == (
        "Client.InvalidPeriod",
        "month",
    )
    admin = client(live_server.base_url, "marketplace", *ADMIN)
    assert _fault(admin.GetBillingStatement, partnerId=f"nobody-{tag}", month=month)[:2] == (
        "Client.UnknownPartner",
        "partnerId",
    )

    # the requester ends it; ending it twice is refused
    ended = requester.TerminateContract(serviceContractId=contract_id, reason="no longer needed")
    assert ended.status == "terminated" and ended.terminatedBy == requester_id
    assert ended.terminationReason == "no longer needed"
    assert _fault(requester.TerminateContract, serviceContractId=contract_id)[0] == (
        "Client.InvalidState"
    )
    assert requester.ListMyContracts(status="terminated").contract[0].serviceContractId == (
        contract_id
    )
    assert requester.ListMyContracts(status="active").pageInfo.totalCount == 0


def test_catalogue_is_paged_and_ordered_by_name(live_server: LiveServer) -> None:
    tag = _tag()
    provider = client(live_server.base_url, "marketplace", *PROVIDER)
    for letter in "CAB":
        service = provider.RegisterService(
            data=_service_data(live_server, f"{letter} finder {tag}")
        )
        provider.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")
    _, requester = _new_partner(live_server)
    pages = [requester.BrowseCatalogue(text=tag, paging={"page": n, "pageSize": 2}) for n in (1, 2)]
    assert [p.pageInfo.totalCount for p in pages] == [3, 3]
    assert [p.pageInfo.page for p in pages] == [1, 2]
    names = [s.data.name for p in pages for s in p.service]
    assert names == [f"{letter} finder {tag}" for letter in "ABC"]
    beyond = requester.BrowseCatalogue(text=tag, paging={"page": 3, "pageSize": 2})
    assert beyond.service == [] and beyond.pageInfo.totalCount == 3


def test_registering_an_endpoint_of_another_family_is_a_contract_mismatch(
    live_server: LiveServer,
) -> None:
    provider = client(live_server.base_url, "marketplace", *PROVIDER)
    name = f"wrong contract {_tag()}"
    code, field, message = _fault(
        provider.RegisterService,
        data=_service_data(
            live_server, name, endpointUrl=f"{live_server.base_url}/services/marketplace"
        ),
    )
    assert (code, field) == ("Client.ContractMismatch", "data/endpointUrl")
    assert "evse_search" in message and "/services/marketplace" in message
    # the differences are named: the canonical bindings against the served ones
    assert "/bindings:" in message
    assert "EvseSearchSoap11Binding" in message and "MarketplaceSoap11Binding" in message
    # nothing was registered
    assert provider.BrowseCatalogue(text=name, state="draft").pageInfo.totalCount == 0


def test_unknown_family_is_refused(live_server: LiveServer) -> None:
    provider = client(live_server.base_url, "marketplace", *PROVIDER)
    code, field, _ = _fault(
        provider.RegisterService,
        data=_service_data(
            live_server, "no such family", serviceInterface={"family": "teleport", "version": 1}
        ),
    )
    assert field == "data/serviceInterface/family"
    assert code.startswith("Client.Unknown")


def test_a_draft_service_can_be_offered_but_not_bought_until_published(
    live_server: LiveServer,
) -> None:
    """The contract: CreateOffering "for a draft or published service"; accepted once published."""
    provider = client(live_server.base_url, "marketplace", *PROVIDER)
    service = provider.RegisterService(data=_service_data(live_server, f"early {_tag()}"))
    offering = provider.CreateOffering(
        serviceId=service.serviceId,
        name="Early bird",
        terms=TERMS,
        validity={"validFrom": datetime.now(UTC) - timedelta(minutes=1)},
    )
    assert offering.status == "open"
    _, requester = _new_partner(live_server)
    code, field, _ = _fault(requester.AcceptOffering, offeringId=offering.offeringId)
    assert (code, field) == ("Client.InvalidState", "offeringId")
    provider.ChangeServiceLifecycle(serviceId=service.serviceId, targetState="published")
    assert requester.AcceptOffering(offeringId=offering.offeringId).status == "active"


def test_offering_on_someone_elses_service_is_not_authorized(live_server: LiveServer) -> None:
    _, service, _ = _published_offering(live_server, f"theirs {_tag()}")
    other = client(live_server.base_url, "marketplace", "bmw-emobility", "demo-evsp2-password")
    code, field, _ = _fault(
        other.CreateOffering,
        serviceId=service.serviceId,
        name="Resale",
        terms=TERMS,
        validity={"validFrom": datetime.now(UTC)},
    )
    assert (code, field) == ("Client.NotAuthorized", "serviceId")
    offers = other.ListOfferings(serviceId=service.serviceId)
    assert [o.name for o in offers.offering] == ["Standard"]


def test_offering_terms_need_a_price(live_server: LiveServer) -> None:
    provider, service, _ = _published_offering(live_server, f"priceless {_tag()}")
    code, field, _ = _fault(
        provider.CreateOffering,
        serviceId=service.serviceId,
        name="Free?",
        terms={"currency": "EUR"},
        validity={"validFrom": datetime.now(UTC)},
    )
    assert (code, field) == ("Client.InvalidTerms", "terms")


def test_accepting_a_withdrawn_offering_is_an_invalid_state(live_server: LiveServer) -> None:
    provider, service, offering = _published_offering(live_server, f"withdrawn {_tag()}")
    withdrawn = provider.WithdrawOffering(offeringId=offering.offeringId, reason="repriced")
    assert withdrawn.status == "withdrawn"
    _, requester = _new_partner(live_server)
    assert requester.ListOfferings(serviceId=service.serviceId).pageInfo.totalCount == 0
    assert [
        o.offeringId
        for o in requester.ListOfferings(serviceId=service.serviceId, status="withdrawn").offering
    ] == [offering.offeringId]
    code, field, _ = _fault(requester.AcceptOffering, offeringId=offering.offeringId)
    assert (code, field) == ("Client.InvalidState", "offeringId")
    assert requester.ListMyContracts().pageInfo.totalCount == 0
    assert _fault(provider.WithdrawOffering, offeringId=offering.offeringId)[0] == (
        "Client.InvalidState"
    )


def test_a_provider_cannot_accept_its_own_offering(live_server: LiveServer) -> None:
    provider, _, offering = _published_offering(live_server, f"own {_tag()}")
    code, field, _ = _fault(provider.AcceptOffering, offeringId=offering.offeringId)
    assert (code, field) == ("Client.NotAuthorized", "offeringId")


def test_partners_see_only_their_own_contracts(live_server: LiveServer) -> None:
    provider, service, offering = _published_offering(live_server, f"shared {_tag()}")
    first_id, first = _new_partner(live_server)
    second_id, second = _new_partner(live_server)
    one = first.AcceptOffering(offeringId=offering.offeringId)
    two = second.AcceptOffering(offeringId=offering.offeringId)

    assert [c.serviceContractId for c in first.ListMyContracts().contract] == [
        one.serviceContractId
    ]
    assert [c.serviceContractId for c in second.ListMyContracts().contract] == [
        two.serviceContractId
    ]
    assert _fault(first.GetContract, serviceContractId=two.serviceContractId)[0] == (
        "Client.UnknownContract"
    )
    assert _fault(second.TerminateContract, serviceContractId=one.serviceContractId)[0] == (
        "Client.UnknownContract"
    )
    code, _, _ = _fault(
        second.GetUsageReport,
        serviceContractId=one.serviceContractId,
        period={"start": datetime(2026, 1, 1, tzinfo=UTC), "end": datetime(2026, 1, 2, tzinfo=UTC)},
    )
    assert code == "Client.UnknownContract"
    # the provider sees both, newest (acceptedAt) first, and can narrow by counterpart
    sold = provider.ListMyContracts(role="provider", serviceId=service.serviceId)
    assert [c.requesterPartnerId for c in sold.contract] == [second_id, first_id]
    assert sold.contract[0].acceptedAt >= sold.contract[1].acceptedAt
    narrowed = provider.ListMyContracts(serviceId=service.serviceId, counterpartPartnerId=second_id)
    assert [c.serviceContractId for c in narrowed.contract] == [two.serviceContractId]
    # the operator may read any contract
    admin = client(live_server.base_url, "marketplace", *ADMIN)
    assert admin.GetContract(serviceContractId=one.serviceContractId).requesterPartnerId == first_id


def test_deregistering_a_service_withdraws_offerings_and_ends_contracts(
    live_server: LiveServer,
) -> None:
    provider, service, offering = _published_offering(live_server, f"gone {_tag()}")
    _, requester = _new_partner(live_server)
    contract = requester.AcceptOffering(offeringId=offering.offeringId)
    result = provider.DeregisterService(serviceId=service.serviceId, reason="closing down")
    assert result.serviceId == service.serviceId
    assert (result.withdrawnOfferings, result.terminatedContracts) == (1, 1)
    assert result.acknowledgement.messageId
    ended = requester.GetContract(serviceContractId=contract.serviceContractId)
    assert ended.status == "terminated" and ended.terminatedBy == "ice-charging"
    assert provider.GetService(serviceId=service.serviceId).state == "retired"
    assert _fault(provider.DeregisterService, serviceId=service.serviceId)[0] == (
        "Client.InvalidState"
    )


def test_roaming_agreements_do_not_overlap(live_server: LiveServer) -> None:
    operator_wire = f"IT*{_letters(3)}"
    provider_wire = f"IT-{_letters(3)}"
    operator_partner, operator = _new_partner(
        live_server, "EvseOperator", operator_id=operator_wire
    )
    provider_partner, provider = _new_partner(live_server, "Evsp", provider_id=provider_wire)
    now = datetime.now(UTC).replace(microsecond=0)
    first = operator.CreateRoamingAgreement(
        operatorId=operator_wire,
        providerId=provider_wire,
        validity={"validFrom": now - timedelta(hours=1), "validTo": now + timedelta(days=30)},
    )
    assert first.status == "active" and first.createdBy == operator_partner
    assert (first.operatorPartnerId, first.providerPartnerId) == (
        operator_partner,
        provider_partner,
    )
    assert first.validity.validTo == now + timedelta(days=30)

    code, field, message = _fault(
        provider.CreateRoamingAgreement,
        operatorId=operator_wire,
        providerId=provider_wire,
        validity={"validFrom": now + timedelta(days=10)},
    )
    assert (code, field) == ("Client.OverlappingAgreement", "validity")
    assert first.roamingAgreementId in message
    # back to back is not an overlap ([from, to) windows)
    second = provider.CreateRoamingAgreement(
        operatorId=operator_wire,
        providerId=provider_wire,
        validity={"validFrom": now + timedelta(days=30)},
    )
    assert second.status == "pending"

    listed = provider.ListRoamingAgreements(operatorId=operator_wire)
    assert [a.roamingAgreementId for a in listed.roamingAgreement] == [
        first.roamingAgreementId,
        second.roamingAgreementId,
    ]
    assert provider.ListRoamingAgreements(status="pending").pageInfo.totalCount == 1
    outsider = client(live_server.base_url, "marketplace", "enel-dso", "demo-dso-password")
    assert outsider.ListRoamingAgreements(operatorId=operator_wire).pageInfo.totalCount == 0
    assert _fault(outsider.TerminateRoamingAgreement, roamingAgreementId=first.roamingAgreementId)[
        :2
    ] == ("Client.UnknownRoamingAgreement", "roamingAgreementId")
    assert _fault(
        outsider.CreateRoamingAgreement,
        operatorId=operator_wire,
        providerId=provider_wire,
        validity={"validFrom": now + timedelta(days=400)},
    )[0] == ("Client.NotAuthorized")

    ended = operator.TerminateRoamingAgreement(
        roamingAgreementId=first.roamingAgreementId, reason="renegotiated"
    )
    assert ended.status == "terminated" and ended.terminatedBy == operator_partner
    assert _fault(operator.TerminateRoamingAgreement, roamingAgreementId=first.roamingAgreementId)[
        0
    ] == ("Client.InvalidState")
    # the ended window is free again from the termination on
    third = operator.CreateRoamingAgreement(
        operatorId=operator_wire,
        providerId=provider_wire,
        validity={
            "validFrom": datetime.now(UTC) + timedelta(minutes=1),
            "validTo": now + timedelta(days=30),
        },
    )
    assert third.status == "pending"
