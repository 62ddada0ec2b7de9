"""SRV 1967 over SOAP, on the lxml path (PERFORMANCE.md §4 path b) instead of spyne binding.

It sits on every routed call, so its request is read with compiled XPaths from the tree the
guard already parsed and validated, and its response is built directly as elements; the
decision itself comes from the shared in-process ContractValidator. Who may ask: a party to
the pair in question, or the marketplace operator.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from domain.marketplace.model import (
    AgreementStatus,
    RoamingAgreement,
    Service,
    ServiceContract,
    Validity,
)
from domain.marketplace.validation import AgreementAnswer, ContractAnswer
from domain.partners import Role
from gembus.context import RequestContext
from gembus.errors import NotAuthorizedError

NS = "urn:gembus:contract-validation:v1"
BRK = "urn:gembus:brokerage:v1"
CMN = "urn:gembus:common:v1"
_NSMAP = {"cv": NS, "brk": BRK, "cmn": CMN}
_TEXT = {
    name: etree.XPath(f"string(cv:{name})", namespaces=_NSMAP)
    for name in (
        "requesterPartnerId",
        "providerPartnerId",
        "serviceId",
        "at",
        "operatorId",
        "providerId",
    )
}
_FAMILY = etree.XPath("string(cv:serviceInterface/brk:family)", namespaces=_NSMAP)
_VERSION = etree.XPath("string(cv:serviceInterface/brk:version)", namespaces=_NSMAP)


def _text(request: etree._Element, name: str) -> str | None:
    value = str(_TEXT[name](request))
    return value or None


def _at(request: etree._Element) -> datetime | None:
    raw = _text(request, "at")
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None


def _may_ask(ctx: RequestContext, *parties: str | None) -> None:
    actor = ctx.actor
    if actor.partner_id not in parties and not actor.has_role(Role.MARKETPLACE_OPERATOR):
        raise NotAuthorizedError("only a party to the contract or the marketplace operator may ask")


def validate_service_contract(request: etree._Element, ctx: RequestContext) -> etree._Element:
    requester = _text(request, "requesterPartnerId") or ""
    provider = _text(request, "providerPartnerId") or ""
    _may_ask(ctx, requester, provider)
    family = str(_FAMILY(request)) or None
    version = str(_VERSION(request))
    answer = ctx.shared.validator.validate_service_contract(
        requester,
        provider,
        service_id=_text(request, "serviceId"),
        interface=(family, int(version) if version else None) if family else None,
        at=_at(request),
    )
    return _contract_response(answer)


def validate_roaming_agreement(request: etree._Element, ctx: RequestContext) -> etree._Element:
    answer = ctx.shared.validator.validate_roaming_agreement(
        _text(request, "operatorId") or "", _text(request, "providerId") or "", _at(request)
    )
    _may_ask(ctx, answer.operator_partner_id, answer.provider_partner_id)
    return _agreement_response(answer)


def _sub(parent: etree._Element, name: str, text: str, ns: str = NS) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    element.text = text
    return element


def _head(root: etree._Element, valid: bool, reason: str, text: str | None, at: datetime) -> None:
    _sub(root, "valid", "true" if valid else "false")
    _sub(root, "reasonCode", reason)
    if text:
        _sub(root, "reason", text[:2000])
    _sub(root, "checkedAt", at.isoformat())


def _validity(parent: etree._Element, validity: Validity) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}validity")
    _sub(element, "validFrom", validity.valid_from.isoformat(), CMN)
    if validity.valid_to is not None:
        _sub(element, "validTo", validity.valid_to.isoformat(), CMN)


def _contract_response(answer: ContractAnswer) -> etree._Element:
    root = etree.Element(
        f"{{{NS}}}ValidateServiceContractResponse", nsmap={"cv": NS, "brk": BRK, "cmn": CMN}
    )
    _head(root, answer.valid, answer.reason.value, answer.text, answer.checked_at)
    if answer.contracts:
        listing = etree.SubElement(root, f"{{{NS}}}contracts")
        for contract, service in answer.contracts[:100]:
            _matched_contract(listing, contract, service, answer.checked_at)
    return root


def _matched_contract(
    parent: etree._Element, contract: ServiceContract, service: Service, at: datetime
) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}contract")
    _sub(element, "serviceContractId", contract.contract_id)
    _sub(element, "serviceId", service.service_id)
    interface = etree.SubElement(element, f"{{{NS}}}serviceInterface")
    _sub(interface, "family", service.data.interface.family, BRK)
    _sub(interface, "version", str(service.data.interface.version), BRK)
    _validity(element, contract.validity)
    _sub(element, "status", contract.status_at(at).value)


def _agreement_response(answer: AgreementAnswer) -> etree._Element:
    root = etree.Element(f"{{{NS}}}ValidateRoamingAgreementResponse", nsmap={"cv": NS, "cmn": CMN})
    _head(root, answer.valid, answer.reason.value, answer.text, answer.checked_at)
    if answer.operator_partner_id:
        _sub(root, "operatorPartnerId", answer.operator_partner_id)
    if answer.provider_partner_id:
        _sub(root, "providerPartnerId", answer.provider_partner_id)
    if answer.agreements:
        listing = etree.SubElement(root, f"{{{NS}}}agreements")
        for agreement in answer.agreements[:100]:
            _matched_agreement(listing, agreement, answer.checked_at)
    return root


def _matched_agreement(parent: etree._Element, agreement: RoamingAgreement, at: datetime) -> None:
    element = etree.SubElement(parent, f"{{{NS}}}agreement")
    _sub(element, "roamingAgreementId", agreement.agreement_id)
    _validity(element, agreement.validity)
    status: AgreementStatus = agreement.status_at(at)
    _sub(element, "status", status.value)


HANDLERS = {
    "ValidateServiceContract": validate_service_contract,
    "ValidateRoamingAgreement": validate_roaming_agreement,
}
