"""The roaming types of ``xsd/types/roaming.xsd`` and ``cmn:TokenType`` as lxml elements.

Both clearing-house families on the lxml path (customer_contracts, authorization) read and
write customer contracts, tokens and entitled services with these functions: the request is
the tree the guard parsed and the bus validated, so reading is child iteration by local name,
and writing builds elements directly (PERFORMANCE.md section 4, path b).
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from domain.clearing.customer_contracts import (
    ContractStatus,
    CustomerContract,
    EntitledService,
    LocalizedText,
    Token,
)
from domain.marketplace.model import Validity

CMN = "urn:gembus:common:v1"
RM = "urn:gembus:roaming:v1"


def children(element: etree._Element) -> dict[str, etree._Element]:
    """Direct children by local name (the last wins; lists are read with :func:`all_named`)."""
    return {etree.QName(child).localname: child for child in element}


def all_named(element: etree._Element | None, name: str) -> list[etree._Element]:
    if element is None:
        return []
    return [child for child in element if etree.QName(child).localname == name]


def text_of(found: dict[str, etree._Element], name: str) -> str | None:
    element = found.get(name)
    if element is None or element.text is None:
        return None
    return element.text.strip()


def required(found: dict[str, etree._Element], name: str) -> str:
    value = text_of(found, name)
    assert value is not None, f"{name} is required by the schema the bus validated against"
    return value


def timestamp(value: str) -> datetime:
    """xs:dateTime; one without an offset is read as UTC (the contracts ask for one)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def optional_timestamp(found: dict[str, etree._Element], name: str) -> datetime | None:
    value = text_of(found, name)
    return timestamp(value) if value else None


def stamp(value: datetime) -> str:
    return value.isoformat()


def sub(parent: etree._Element, ns: str, name: str, value: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    if value is not None:
        element.text = value
    return element


def sub_optional(parent: etree._Element, ns: str, name: str, value: str | None) -> None:
    if value is not None:
        sub(parent, ns, name, value)


# --------------------------------------------------------------------------- reading


def token_in(element: etree._Element) -> Token:
    found = children(element)
    return Token(
        required(found, "instance"),
        required(found, "tokenType"),
        text_of(found, "tokenSubType"),
        text_of(found, "representation"),
    )


def validity_in(element: etree._Element) -> Validity:
    found = children(element)
    return Validity(timestamp(required(found, "validFrom")), optional_timestamp(found, "validTo"))


def service_in(element: etree._Element) -> EntitledService:
    found = children(element)
    names = tuple(
        LocalizedText((n.text or "").strip(), n.get("lang")) for n in all_named(element, "name")
    )
    validity = found.get("validity")
    return EntitledService(
        required(found, "serviceType"),
        text_of(found, "serviceCode"),
        names,
        validity_in(validity) if validity is not None else None,
    )


def contract_in(element: etree._Element) -> CustomerContract:
    """One rm:CustomerContractType."""
    found = children(element)
    services = found.get("entitledServices")
    return CustomerContract(
        required(found, "contractId"),
        ContractStatus(required(found, "status")),
        validity_in(found["validity"]),
        tuple(token_in(t) for t in all_named(found.get("tokens"), "token")),
        text_of(found, "printedNumber"),
        None if services is None else tuple(service_in(s) for s in all_named(services, "service")),
    )


# --------------------------------------------------------------------------- writing


def token_out(parent: etree._Element, ns: str, name: str, token: Token) -> None:
    element = sub(parent, ns, name)
    sub(element, CMN, "instance", token.instance)
    sub(element, CMN, "tokenType", token.token_type)
    sub_optional(element, CMN, "tokenSubType", token.sub_type)
    sub_optional(element, CMN, "representation", token.representation)


def validity_out(parent: etree._Element, ns: str, validity: Validity) -> None:
    element = sub(parent, ns, "validity")
    sub(element, CMN, "validFrom", stamp(validity.valid_from))
    if validity.valid_to is not None:
        sub(element, CMN, "validTo", stamp(validity.valid_to))


def services_out(parent: etree._Element, ns: str, services: tuple[EntitledService, ...]) -> None:
    """An rm:EntitledServiceListType (1..50 services) named ``services`` in ``ns``."""
    listing = sub(parent, ns, "services")
    for service in services[:50]:
        service_out(listing, service)


def service_out(parent: etree._Element, service: EntitledService) -> None:
    element = sub(parent, RM, "service")
    sub(element, RM, "serviceType", service.service_type)
    sub_optional(element, RM, "serviceCode", service.service_code)
    for name in service.names[:10]:
        text = sub(element, RM, "name", name.text)
        if name.lang is not None:
            text.set("lang", name.lang)
    if service.validity is not None:
        validity_out(element, RM, service.validity)


def contract_out(parent: etree._Element, ns: str, contract: CustomerContract, at: datetime) -> None:
    """An rm:CustomerContractType named ``contract`` in ``ns``, with its status as of ``at``."""
    element = sub(parent, ns, "contract")
    sub(element, RM, "contractId", contract.contract_id)
    sub(element, RM, "status", contract.status_at(at).value)
    validity_out(element, RM, contract.validity)
    if contract.tokens:
        tokens = sub(element, RM, "tokens")
        for token in contract.tokens:
            token_out(tokens, RM, "token", token)
    sub_optional(element, RM, "printedNumber", contract.printed_number)
    if contract.entitled_services:
        services = sub(element, RM, "entitledServices")
        for service in contract.entitled_services:
            service_out(services, service)
