"""Conformance of the canonical contracts: they load everywhere and follow WS-I Basic Profile.

These checks are what lets Java, .NET, PHP, C++ and Python partners generate clients from
gembus's WSDLs without surprises: wrapped document/literal, one `parameters` part, element-
based messages, unique operations, a soapAction on every operation, a declared fault with the
common detail, SOAP 1.1 and 1.2 bindings, qualified elements and no nillable fields.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xmlschema
import zeep
from lxml import etree

from bus.contracts import PARTNER_IMPLEMENTED, all_contracts, load_contract

REPO = Path(__file__).resolve().parents[2]
WSDLS = sorted((REPO / "wsdl").glob("*.wsdl"))
XSDS = sorted((REPO / "xsd").rglob("*.xsd"))
W = "http://schemas.xmlsoap.org/wsdl/"
S11 = "http://schemas.xmlsoap.org/wsdl/soap/"
S12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
XS = "http://www.w3.org/2001/XMLSchema"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

#: Every family ARCHITECTURE.md §1 and the foundation issue name; a missing file fails.
EXPECTED_FAMILIES = {
    "marketplace",
    "contract_validation",
    "evse_search",
    "evse_masterdata",
    "evse_upload",
    "evse_status",
    "evse_status_push",
    "reservation",
    # a v2 is a new file and a new namespace: family "reservation", version 2
    "reservation_v2",
    "authorization",
    "customer_contracts",
    "sdr",
    "sdr_receiver",
    "financial_clearing",
    "load_management",
    "power_modulation",
    "charge_for_free",
    "notification",
}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def test_every_family_has_a_contract() -> None:
    assert {p.stem for p in WSDLS} == EXPECTED_FAMILIES
    assert PARTNER_IMPLEMENTED <= EXPECTED_FAMILIES


@pytest.mark.parametrize("xsd", XSDS, ids=_ids(XSDS))
def test_every_xsd_compiles_in_lxml_and_xmlschema(xsd: Path) -> None:
    etree.XMLSchema(etree.parse(str(xsd), PARSER))
    xmlschema.XMLSchema(str(xsd))
    root = etree.parse(str(xsd), PARSER).getroot()
    assert root.get("elementFormDefault") == "qualified"
    assert not root.xpath("//xs:element[@nillable]", namespaces={"xs": XS}), "no nillable fields"


@pytest.mark.parametrize("wsdl", WSDLS, ids=_ids(WSDLS))
def test_every_wsdl_loads_in_zeep_on_both_ports(wsdl: Path) -> None:
    contract = load_contract(wsdl)
    client = zeep.Client(str(wsdl))
    for port in ("Soap11Port", "Soap12Port"):
        proxy = client.bind(
            contract.service_name, contract.service_name.removesuffix("Service") + port
        )
        names = set(proxy._binding._operations)
        assert names == {op.name for op in contract.operations.values()}


@pytest.mark.parametrize("wsdl", WSDLS, ids=_ids(WSDLS))
def test_ws_i_basic_profile_rules(wsdl: Path) -> None:
    root = etree.parse(str(wsdl), PARSER).getroot()
    tns = root.get("targetNamespace", "")
    assert re.fullmatch(r"urn:gembus:[a-z][a-z-]*:v[0-9]+", tns), tns
    # wsdl/<family>.wsdl is version 1; version N > 1 is wsdl/<family>_v<N>.wsdl
    named = re.fullmatch(r"(?P<family>[a-z][a-z0-9_]*?)(?:_v(?P<n>[2-9]|[1-9][0-9]+))?", wsdl.stem)
    assert named is not None, wsdl.stem
    assert tns == f"urn:gembus:{named['family'].replace('_', '-')}:v{named['n'] or 1}"
    assert not root.findall(f"{{{W}}}import"), "WSDL imports are not used; XSDs come via xs:import"
    messages = {m.get("name"): m for m in root.iterfind(f"{{{W}}}message")}
    for message in messages.values():
        parts = message.findall(f"{{{W}}}part")
        assert len(parts) == 1 and parts[0].get("element") and not parts[0].get("type")
        assert parts[0].get("name") == (
            "fault" if message.get("name") == "GembusFault" else "parameters"
        )
    assert messages["GembusFault"].find(f"{{{W}}}part").get("element").endswith(":gembusFault")
    operations = root.findall(f"{{{W}}}portType/{{{W}}}operation")
    names = [op.get("name") for op in operations]
    assert len(names) == len(set(names)) > 0
    for op in operations:
        name = op.get("name")
        assert (op.findtext(f"{{{W}}}documentation") or "").strip(), f"{name} has no documentation"
        request = messages[op.find(f"{{{W}}}input").get("message").split(":")[1]]
        response = messages[op.find(f"{{{W}}}output").get("message").split(":")[1]]
        assert request.find(f"{{{W}}}part").get("element").split(":")[1] == name, (
            "wrapped: element = operation"
        )
        assert response.find(f"{{{W}}}part").get("element").split(":")[1] == f"{name}Response"
        faults = op.findall(f"{{{W}}}fault")
        assert [(f.get("name"), f.get("message")) for f in faults] == [
            ("GembusFault", "tns:GembusFault")
        ]
    _check_bindings(root, tns, set(names))


def _check_bindings(root: etree._Element, tns: str, names: set[str]) -> None:
    bindings = root.findall(f"{{{W}}}binding")
    assert sorted(b.get("name", "").removeprefix(root.get("name", "")) for b in bindings) == [
        "Soap11Binding",
        "Soap12Binding",
    ]
    for binding, ns in zip(sorted(bindings, key=lambda b: b.get("name")), (S11, S12), strict=True):
        soap_binding = binding.find(f"{{{ns}}}binding")
        assert soap_binding is not None and soap_binding.get("style") == "document"
        assert soap_binding.get("transport") == "http://schemas.xmlsoap.org/soap/http"
        ops = binding.findall(f"{{{W}}}operation")
        assert {o.get("name") for o in ops} == names
        for op in ops:
            assert op.find(f"{{{ns}}}operation").get("soapAction") == f"{tns}/{op.get('name')}"
            uses = [b.get("use") for b in op.iter(f"{{{ns}}}body", f"{{{ns}}}fault")]
            assert uses == ["literal"] * 3, "input, output and fault are literal"
    ports = root.findall(f"{{{W}}}service/{{{W}}}port")
    assert len(ports) == 2
    assert (
        ports[0].find(f"{{{S11}}}address") is not None
        and ports[1].find(f"{{{S12}}}address") is not None
    )
    # gSOAP picks SOAP 1.2 for a SOAP 1.1 WSDL that merely declares the 1.2 namespace; here
    # the namespace is declared because a 1.2 binding really exists (checked above).


FIXTURES = sorted((REPO / "tests" / "fixtures").glob("re*/*/*.xml"))


@pytest.mark.parametrize("sample", FIXTURES, ids=_ids(FIXTURES))
def test_sample_messages_validate_against_their_family(sample: Path) -> None:
    contract = all_contracts()[sample.parent.name]
    element = etree.parse(str(sample), PARSER).getroot()
    assert contract.schema.validate(element), contract.schema.error_log
    names = {op.input_element for op in contract.operations.values()} | {
        op.output_element for op in contract.operations.values()
    }
    assert element.tag in names


def test_every_operation_has_a_sample_request_and_response() -> None:
    missing = []
    for family, contract in all_contracts().items():
        for op in contract.operations.values():
            for kind, suffix in (("requests", ""), ("responses", "Response")):
                if not (
                    REPO / "tests" / "fixtures" / kind / family / f"{op.name}{suffix}.xml"
                ).exists():
                    missing.append(f"{kind}/{family}/{op.name}{suffix}")
    assert not missing, missing
