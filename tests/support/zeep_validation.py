"""A zeep plugin that validates every request and response on the wire against the canonical XSD.

Every e2e test builds its clients through :func:`client`, so no message a test exchanges
escapes the contract check; a violation raises ContractViolation inside the zeep call.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from zeep import Client, Plugin, Settings
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from bus.contracts import all_contracts
from bus.soap import SOAP11_ENV, SOAP12_ENV


class ContractViolation(AssertionError):
    pass


class ContractValidationPlugin(Plugin):  # type: ignore[misc]
    """Validates the Body child (request, response or fault detail) of each message."""

    def __init__(self, family: str) -> None:
        self.schema = all_contracts()[family].schema
        self.validated = 0

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        self._check(envelope, "request")
        return envelope, http_headers

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> Any:
        self._check(envelope, "response")
        return envelope, http_headers

    def _check(self, envelope: etree._Element, direction: str) -> None:
        body = envelope.find(f"{{{SOAP11_ENV}}}Body")
        if body is None:
            body = envelope.find(f"{{{SOAP12_ENV}}}Body")
        assert body is not None and len(body) == 1, f"{direction}: no single Body child"
        child = body[0]
        if etree.QName(child).localname == "Fault":
            child = _fault_detail(child)
            if child is None:
                raise ContractViolation(f"{direction}: fault without the common gembusFault detail")
        if not self.schema.validate(child):
            raise ContractViolation(f"{direction} {child.tag}: {self.schema.error_log.last_error}")
        self.validated += 1


def _fault_detail(fault: etree._Element) -> etree._Element | None:
    for detail in fault.iter("detail", f"{{{SOAP12_ENV}}}Detail"):
        if len(detail):
            return detail[0]
    return None


def client(
    base_url: str,
    family: str,
    user: str | None = None,
    password: str | None = None,
    *,
    soap12: bool = False,
) -> Any:
    """A strict zeep client for one family, validating every message, optionally authenticated."""
    wsse = UsernameToken(user, password, use_digest=True) if user else None
    plugin = ContractValidationPlugin(family)
    # forbid_external stays off only because the served WSDL imports its XSDs from the same
    # server under test; DTDs and entities are refused as a partner's client should.
    settings = Settings(
        strict=True,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=False,
        xml_huge_tree=False,
    )
    zeep_client = Client(
        f"{base_url}/services/{family}?wsdl",
        wsse=wsse,
        plugins=[plugin],
        settings=settings,
        transport=Transport(timeout=10, operation_timeout=20),
    )
    contract = all_contracts()[family]
    if soap12:
        return zeep_client.bind(
            contract.service_name, contract.service_name.replace("Service", "Soap12Port")
        )
    return zeep_client.service
