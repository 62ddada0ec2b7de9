"""What the running server publishes: the index, every WSDL (≡ canonical), and honest stubs.

- every family's WSDL loads in zeep from the server, on both ports;
- the served WSDL of every endpoint is equivalent to the canonical file (operations, element
  QNames, types, occurrences) - checked with tests/support/equivalence.py, which reads the
  served document and the XSDs it imports over HTTP;
- every operation gembus does not implement yet answers the declared Server.NotImplemented
  fault with the common detail, and only those operations do.
"""

from __future__ import annotations

import pytest
import requests
import zeep
from lxml import etree

from bus.contracts import all_contracts
from bus.equivalence import differences, signature
from gembus.bootstrap import build_handlers
from tests.conftest import REPO
from tests.e2e.conftest import LiveServer
from tests.support.soap import envelope, wsse_header

pytestmark = pytest.mark.e2e
CONTRACTS = all_contracts()
SERVED = sorted(f for f, c in CONTRACTS.items() if c.served_by_gembus)
IMPLEMENTED = build_handlers()


def wsdl_url(server: LiveServer, family: str) -> str:
    if CONTRACTS[family].served_by_gembus:
        return f"{server.base_url}/services/{family}?wsdl"
    return f"{server.base_url}/wsdl/{family}.wsdl"


def test_index_lists_every_family_for_people_and_tools(live_server: LiveServer) -> None:
    entries = requests.get(f"{live_server.base_url}/?format=json", timeout=5).json()
    assert {e["name"] for e in entries} == set(CONTRACTS)
    for entry in entries:
        assert set(entry) >= {"name", "wsdl", "endpoint"}
        assert entry["wsdl"] == wsdl_url(live_server, entry["name"])
        served = CONTRACTS[entry["name"]].served_by_gembus
        assert (entry["endpoint"] == f"{live_server.base_url}/services/{entry['name']}") is served
    page = requests.get(f"{live_server.base_url}/", timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    assert "gembus service index" in page.text and "evse_search" in page.text


@pytest.mark.parametrize("family", sorted(CONTRACTS))
def test_every_wsdl_loads_in_zeep_from_the_server(live_server: LiveServer, family: str) -> None:
    contract = CONTRACTS[family]
    client = zeep.Client(wsdl_url(live_server, family))
    port = client.bind(
        contract.service_name, contract.service_name.removesuffix("Service") + "Soap12Port"
    )
    assert set(port._binding._operations) == {op.name for op in contract.operations.values()}
    if contract.served_by_gembus:
        assert port._binding_options["address"] == f"{live_server.base_url}/services/{family}"


@pytest.mark.parametrize("family", SERVED)
def test_served_wsdl_is_equivalent_to_the_canonical_one(
    live_server: LiveServer, family: str
) -> None:
    url = wsdl_url(live_server, family)
    served = signature(requests.get(url, timeout=5).content, url)
    path = REPO / "wsdl" / f"{family}.wsdl"
    canonical = signature(path.read_bytes(), path.as_uri())
    assert differences(canonical, served) == []
    assert served["operations"], "the signature must not be vacuous"


NOT_IMPLEMENTED = [
    (family, op.name)
    for family in SERVED
    for op in CONTRACTS[family].operations.values()
    if op.name not in IMPLEMENTED.get(family, {})
]


@pytest.mark.parametrize(("family", "operation"), NOT_IMPLEMENTED)
def test_unimplemented_operations_answer_the_declared_fault(
    live_server: LiveServer, family: str, operation: str
) -> None:
    sample = (REPO / "tests" / "fixtures" / "requests" / family / f"{operation}.xml").read_text()
    sample = sample.split("?>", 1)[-1] if sample.startswith("<?xml") else sample
    contract = CONTRACTS[family]
    body = envelope(sample, wsse_header("gembus-admin", "demo-admin-password"))
    response = requests.post(
        f"{live_server.base_url}/services/{family}",
        data=body,
        timeout=10,
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{contract.operation_named(operation).soap_action}"',
        },
    )
    assert response.status_code == 500
    root = etree.fromstring(response.content)
    detail = root.find(".//{urn:gembus:common:v1}gembusFault")
    assert detail is not None, response.text
    assert contract.schema.validate(detail), contract.schema.error_log
    assert detail.findtext("{urn:gembus:common:v1}code") == "Server.NotImplemented"


def test_implemented_operations_are_not_stubs(live_server: LiveServer) -> None:
    implemented = [(f, o) for f, ops in IMPLEMENTED.items() for o in ops]
    assert ("marketplace", "RegisterPartner") in implemented
    assert not set(implemented) & set(NOT_IMPLEMENTED)
