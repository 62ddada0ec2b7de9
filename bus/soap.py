"""SOAP 1.1 / 1.2 envelopes and faults, built with lxml.

gembus renders faults itself instead of letting spyne do it, because spyne's SOAP 1.2
Subcode values are not namespace-qualified (JAX-WS rejects them) and its codes do not
carry the common fault detail every WSDL declares.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lxml import etree

from gembus.errors import GembusError

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
COMMON_NS = "urn:gembus:common:v1"
XML_NS = "http://www.w3.org/XML/1998/namespace"


class SoapVersion(enum.Enum):
    """The two SOAP versions every gembus endpoint speaks on one address."""

    SOAP11 = SOAP11_ENV
    SOAP12 = SOAP12_ENV

    @property
    def content_type(self) -> str:
        if self is SoapVersion.SOAP11:
            return "text/xml; charset=utf-8"
        return "application/soap+xml; charset=utf-8"

    @property
    def label(self) -> str:
        return "SOAP 1.1" if self is SoapVersion.SOAP11 else "SOAP 1.2"

    @classmethod
    def from_namespace(cls, namespace: str | None) -> SoapVersion | None:
        for version in cls:
            if version.value == namespace:
                return version
        return None


@dataclass(frozen=True)
class Fault:
    """Everything needed to render one fault; built from a GembusError at the boundary."""

    code: str
    message: str
    field: str | None = None
    message_id: str | None = None

    @classmethod
    def from_error(cls, error: GembusError, message_id: str | None) -> Fault:
        return cls(error.fault_code, error.message, error.field, message_id)

    @property
    def is_client(self) -> bool:
        return not self.code.startswith("Server")


def build_envelope(version: SoapVersion, body_child: etree._Element) -> bytes:
    """Wrap one Body child in an envelope of the request's SOAP version."""
    env = etree.Element(f"{{{version.value}}}Envelope", nsmap={"soapenv": version.value})
    body = etree.SubElement(env, f"{{{version.value}}}Body")
    body.append(body_child)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def fault_http_status(version: SoapVersion, fault: Fault) -> int:
    """SOAP 1.1 faults travel with 500; SOAP 1.2 Sender faults with 400 (SOAP 1.2 part 2 §7.5)."""
    if version is SoapVersion.SOAP12 and fault.is_client:
        return 400
    return 500


def build_fault(version: SoapVersion, fault: Fault) -> bytes:
    """Render a fault with the common gembus detail (code, message, field, messageId)."""
    element = _fault11(fault) if version is SoapVersion.SOAP11 else _fault12(fault)
    return build_envelope(version, element)


def _detail(fault: Fault) -> etree._Element:
    detail = etree.Element(f"{{{COMMON_NS}}}gembusFault", nsmap={"cmn": COMMON_NS})
    if fault.code in ("VersionMismatch", "MustUnderstand"):
        code = f"Client.{fault.code}"
    else:
        code = fault.code
    etree.SubElement(detail, f"{{{COMMON_NS}}}code").text = code
    etree.SubElement(detail, f"{{{COMMON_NS}}}message").text = fault.message[:2000]
    if fault.field:
        etree.SubElement(detail, f"{{{COMMON_NS}}}field").text = fault.field[:512]
    if fault.message_id:
        etree.SubElement(detail, f"{{{COMMON_NS}}}messageId").text = fault.message_id
    return detail


def _fault11(fault: Fault) -> etree._Element:
    element = etree.Element(f"{{{SOAP11_ENV}}}Fault", nsmap={"soapenv": SOAP11_ENV})
    etree.SubElement(element, "faultcode").text = f"soapenv:{fault.code}"
    etree.SubElement(element, "faultstring").text = fault.message
    detail = etree.SubElement(element, "detail")
    detail.append(_detail(fault))
    return element


def _fault12(fault: Fault) -> etree._Element:
    ns = SOAP12_ENV
    element = etree.Element(f"{{{ns}}}Fault", nsmap={"soapenv": ns, "g": COMMON_NS})
    code = etree.SubElement(element, f"{{{ns}}}Code")
    top, _, rest = fault.code.partition(".")
    if fault.code in ("VersionMismatch", "MustUnderstand"):
        etree.SubElement(code, f"{{{ns}}}Value").text = f"soapenv:{fault.code}"
    else:
        value = "soapenv:Sender" if top == "Client" else "soapenv:Receiver"
        etree.SubElement(code, f"{{{ns}}}Value").text = value
        if rest:
            # Subcode values are QNames; qualify them so JAX-WS and .NET accept them.
            subcode = etree.SubElement(code, f"{{{ns}}}Subcode")
            etree.SubElement(subcode, f"{{{ns}}}Value").text = f"g:{rest}"
    reason = etree.SubElement(element, f"{{{ns}}}Reason")
    text = etree.SubElement(reason, f"{{{ns}}}Text")
    text.set(f"{{{XML_NS}}}lang", "en")
    text.text = fault.message
    detail = etree.SubElement(element, f"{{{ns}}}Detail")
    detail.append(_detail(fault))
    return element
