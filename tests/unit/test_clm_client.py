"""The CLM pull client's classification of answers, on canned bytes (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from adapters.clm_client import ClmPullError, PullFailure, interpret
from bus.contracts import all_contracts
from bus.soap import Fault, SoapVersion, build_envelope, build_fault

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "responses"
MD = "urn:gembus:evse-masterdata:v1"
FULL = f"{{{MD}}}GetEvseMasterDataResponse"
SCHEMA = all_contracts()["evse_masterdata"].schema


def envelope(name: str) -> bytes:
    child = etree.parse(str(FIXTURES / "evse_masterdata" / name)).getroot()
    return build_envelope(SoapVersion.SOAP11, child)


def failure(status: int, body: bytes, expected: str = FULL) -> ClmPullError:
    with pytest.raises(ClmPullError) as caught:
        interpret(status, body, expected, SCHEMA)
    return caught.value


def test_a_valid_page_is_returned_as_its_body_child() -> None:
    child = interpret(200, envelope("GetEvseMasterDataResponse.xml"), FULL, SCHEMA)
    assert len(child.findall(f"{{{MD}}}evse")) == 2


def test_broken_xml_is_not_xml() -> None:
    assert failure(200, b"<soapenv:Envelope><soapenv:Body><m:Get").kind is PullFailure.NOT_XML
    assert failure(200, b"").kind is PullFailure.NOT_XML


def test_a_schema_breach_names_the_first_error() -> None:
    body = envelope("GetEvseMasterDataResponse.xml").replace(
        b"<ev:staticStatus>Operative</ev:staticStatus>", b"<ev:staticStatus>Open</ev:staticStatus>"
    )
    error = failure(200, body)
    assert error.kind is PullFailure.SCHEMA_INVALID
    assert "staticStatus" in error.detail and error.detail.startswith("line ")


def test_another_operations_answer_is_schema_invalid() -> None:
    body = envelope("GetEvseMasterDataDeltaResponse.xml")
    error = failure(200, body)
    assert error.kind is PullFailure.SCHEMA_INVALID
    assert "GetEvseMasterDataDeltaResponse" in error.detail


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>hello</body></html>",
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
        b'<!DOCTYPE x [<!ENTITY a "b">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
        b'envelope/"><s:Body><x/></s:Body></s:Envelope>',
    ],
    ids=["not-soap", "empty-body", "dtd"],
)
def test_xml_that_is_no_soap_answer_is_schema_invalid(body: bytes) -> None:
    assert failure(200, body).kind is PullFailure.SCHEMA_INVALID


def test_a_gembus_fault_gives_its_code_whatever_the_status() -> None:
    body = build_fault(SoapVersion.SOAP11, Fault("Client.DeltaNotAvailable", "too old", "since"))
    for status in (500, 200):
        error = failure(status, body)
        assert error.kind is PullFailure.FAULT
        assert error.fault_code == "Client.DeltaNotAvailable"
        assert error.http_status == status


def test_a_foreign_fault_gives_the_soap_fault_code() -> None:
    body = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Server</faultcode><faultstring>boom</faultstring></s:Fault></s:Body>"
        b"</s:Envelope>"
    )
    error = failure(500, body)
    assert (error.kind, error.fault_code) == (PullFailure.FAULT, "Server")


def test_a_soap12_fault_is_understood() -> None:
    body = build_fault(SoapVersion.SOAP12, Fault("Server.Unavailable", "maintenance"))
    assert failure(500, body).fault_code == "Server.Unavailable"


@pytest.mark.parametrize("body", [b"Internal Server Error", b"<html>503</html>", b""])
def test_a_non_200_without_a_fault_is_an_http_error(body: bytes) -> None:
    error = failure(503 if body.startswith(b"<") else 500, body)
    assert error.kind is PullFailure.HTTP_ERROR
    assert error.http_status in (500, 503)


def test_a_valid_answer_with_a_non_200_status_is_an_http_error() -> None:
    assert failure(404, envelope("GetEvseMasterDataResponse.xml")).kind is PullFailure.HTTP_ERROR


def test_entities_are_never_expanded() -> None:
    body = (
        b'<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b"<x>&x;</x></s:Body></s:Envelope>"
    )
    error = failure(200, body)
    assert error.kind is PullFailure.SCHEMA_INVALID
    assert "root:" not in error.detail
