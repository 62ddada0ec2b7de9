"""The fake CLM (tests/fakes/clm.py) speaks the canonical reservation contract, byte for byte.

No sockets: the WSGI app is called in-process with canonical sample requests wrapped in
SOAP 1.1 envelopes, and every response Body child and fault detail is validated against the
compiled reservation schema gembus itself uses.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from lxml import etree

from bus.contracts import all_contracts
from bus.soap import SOAP11_ENV
from tests.conftest import REPO
from tests.fakes.clm import LOG_ENV_VAR, ClmApp, make_clm_app, read_log
from tests.support.soap import WsgiResult, call, envelope

R = "urn:gembus:reservation:v1"
CMN = "urn:gembus:common:v1"
SAMPLES = REPO / "tests" / "fixtures" / "requests" / "reservation"
EVSE = "DE*ICE*E123460*2"  # the canonical sample's EVSE, operated by DE*ICE
WSSE = (
    '<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
    'oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>gembus'
    "</wsse:Username></wsse:UsernameToken></wsse:Security>"
)


def sample(name: str, **replace: str) -> str:
    """A canonical sample request without its XML declaration, with element texts replaced."""
    text = re.sub(r"<\?xml[^>]*\?>", "", (SAMPLES / f"{name}.xml").read_text())
    for tag, value in replace.items():
        text, n = re.subn(rf"(<r:{tag}>)[^<]*(</r:{tag}>)", rf"\g<1>{value}\g<2>", text)
        assert n == 1, tag
    return text


def drop(text: str, *tags: str) -> str:
    for tag in tags:
        text, n = re.subn(rf"<r:{tag}>.*?</r:{tag}>", "", text, flags=re.S)
        assert n == 1, tag
    return text


def post(app: ClmApp, body: str, operation: str, header: str = "") -> WsgiResult:
    return call(app, envelope(body, header), path="/clm/reservation", action=f"{R}/{operation}")


def body_child(result: WsgiResult) -> etree._Element:
    root = etree.fromstring(result.body)
    assert root.tag == f"{{{SOAP11_ENV}}}Envelope"
    body = root.find(f"{{{SOAP11_ENV}}}Body")
    assert body is not None and len(body) == 1
    return body[0]


def assert_valid(element: etree._Element) -> None:
    schema = all_contracts()["reservation"].schema
    assert schema.validate(element), schema.error_log.last_error


def response(result: WsgiResult, operation: str) -> etree._Element:
    """The response element, checked: HTTP 200, SOAP 1.1, valid against the canonical XSD."""
    assert result.status == 200, result.text
    assert result.headers["Content-Type"].startswith("text/xml")
    element = body_child(result)
    assert element.tag == f"{{{R}}}{operation}Response"
    assert_valid(element)
    return element


def fault_detail(result: WsgiResult, code: str) -> etree._Element:
    """The cmn:gembusFault of a SOAP 1.1 Client fault, checked against the canonical XSD."""
    assert result.status == 500, result.text
    fault = body_child(result)
    assert fault.tag == f"{{{SOAP11_ENV}}}Fault"
    faultcode = fault.findtext("faultcode")
    assert faultcode is not None
    prefix, _, local = faultcode.partition(":")
    assert fault.nsmap[prefix] == SOAP11_ENV
    assert local == code and local.startswith("Client.")
    assert fault.findtext("faultstring")
    detail = fault.find("detail")
    assert detail is not None and len(detail) == 1
    gembus_fault = detail[0]
    assert gembus_fault.tag == f"{{{CMN}}}gembusFault"
    assert_valid(gembus_fault)
    assert gembus_fault.findtext(f"{{{CMN}}}code") == code
    return gembus_fault


def text(element: etree._Element, local: str) -> str | None:
    return element.findtext(f"{{{R}}}{local}")


@pytest.fixture
def clm() -> ClmApp:
    return make_clm_app("DE*ICE", refuse={"DE*ICE*E123460*9"})


def test_sample_request_is_itself_canonical() -> None:
    assert_valid(etree.fromstring(sample("ReserveEvse").encode()))
    assert_valid(etree.fromstring(sample("CancelReservation").encode()))


def test_reserve_answers_a_valid_response_in_xsd_order(clm: ClmApp) -> None:
    element = response(post(clm, sample("ReserveEvse"), "ReserveEvse"), "ReserveEvse")
    assert [etree.QName(c).localname for c in element] == [
        "reservationId",
        "evseId",
        "partnerReservationId",
        "start",
        "expiry",
    ]
    assert all(etree.QName(c).namespace == R for c in element)
    assert text(element, "reservationId") == "DEICE-R1"
    assert text(element, "evseId") == EVSE
    assert text(element, "partnerReservationId") == "TNM-RES-2012-000815"
    assert text(element, "start") == "2012-11-20T11:15:00+01:00"
    assert text(element, "expiry") == "2012-11-20T11:45:00+01:00"


def test_reservation_ids_count_up_and_optional_elements_are_omitted(clm: ClmApp) -> None:
    minimal = drop(sample("ReserveEvse"), "token", "partnerReservationId", "requestedStart")
    assert_valid(etree.fromstring(minimal.encode()))
    first = response(post(clm, minimal, "ReserveEvse"), "ReserveEvse")
    second = response(post(clm, minimal, "ReserveEvse"), "ReserveEvse")
    assert text(first, "reservationId") == "DEICE-R1"
    assert text(second, "reservationId") == "DEICE-R2"
    assert first.find(f"{{{R}}}partnerReservationId") is None
    assert text(first, "start")  # now, since no requestedStart was sent
    assert text(first, "expiry") == "2012-11-20T11:45:00+01:00"


def test_operator_key_of_a_din_operator() -> None:
    clm = make_clm_app("+49*823")
    body = sample("ReserveEvse", evseId="+49*823*1234*5678")
    element = response(post(clm, body, "ReserveEvse"), "ReserveEvse")
    assert text(element, "reservationId") == "DE823-R1"
    assert text(element, "evseId") == "+49*823*1234*5678"


def test_repeat_with_same_partner_reference_returns_the_reservation(clm: ClmApp) -> None:
    first = response(post(clm, sample("ReserveEvse"), "ReserveEvse"), "ReserveEvse")
    again = response(post(clm, sample("ReserveEvse"), "ReserveEvse"), "ReserveEvse")
    assert text(again, "reservationId") == text(first, "reservationId") == "DEICE-R1"
    other = sample("ReserveEvse", requestedExpiry="2012-11-20T12:00:00+01:00")
    detail = fault_detail(post(clm, other, "ReserveEvse"), "Client.DuplicateReservation")
    assert detail.findtext(f"{{{CMN}}}field") == "partnerReservationId"


def test_refused_evse_is_a_client_fault_with_the_common_detail(clm: ClmApp) -> None:
    body = sample("ReserveEvse", evseId="DE*ICE*E123460*9")
    detail = fault_detail(post(clm, body, "ReserveEvse"), "Client.EvseNotReservable")
    assert detail.findtext(f"{{{CMN}}}field") == "evseId"
    assert "DE*ICE*E123460*9" in (detail.findtext(f"{{{CMN}}}message") or "")
    # any notation of the refused EVSE is refused
    compact = sample("ReserveEvse", evseId="DEICEE1234609")
    fault_detail(post(clm, compact, "ReserveEvse"), "Client.EvseNotReservable")
    assert clm.reservations == {}


def test_evse_of_another_operator_is_unknown(clm: ClmApp) -> None:
    body = sample("ReserveEvse", evseId="NL*ALF*E000123*1")
    detail = fault_detail(post(clm, body, "ReserveEvse"), "Client.UnknownEvse")
    assert detail.findtext(f"{{{CMN}}}field") == "evseId"


def test_cancel_answers_a_valid_response_and_repeats_the_original(clm: ClmApp) -> None:
    reserved = response(post(clm, sample("ReserveEvse"), "ReserveEvse"), "ReserveEvse")
    reservation_id = text(reserved, "reservationId")
    assert reservation_id is not None
    cancel = sample("CancelReservation", reservationId=reservation_id)
    first = response(post(clm, cancel, "CancelReservation"), "CancelReservation")
    assert [etree.QName(c).localname for c in first] == ["reservationId", "evseId", "cancelledAt"]
    assert text(first, "reservationId") == reservation_id
    assert text(first, "evseId") == EVSE
    time.sleep(1.1)
    again = response(post(clm, cancel, "CancelReservation"), "CancelReservation")
    assert text(again, "cancelledAt") == text(first, "cancelledAt")


def test_cancel_of_an_unknown_reservation_is_a_fault(clm: ClmApp) -> None:
    result = post(clm, sample("CancelReservation"), "CancelReservation")
    detail = fault_detail(result, "Client.UnknownReservation")
    assert detail.findtext(f"{{{CMN}}}field") == "reservationId"


def test_forwarded_security_header_is_accepted(clm: ClmApp) -> None:
    result = post(clm, sample("ReserveEvse"), "ReserveEvse", header=WSSE)
    response(result, "ReserveEvse")


def test_every_request_is_recorded_in_memory_and_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "clm.log"
    clm = make_clm_app("DE*ICE", log_path=log)
    sent = envelope(sample("ReserveEvse"))
    call(clm, sent, path="/clm/reservation", action=f"{R}/ReserveEvse")
    post(clm, sample("CancelReservation"), "CancelReservation")
    assert [r.operation for r in clm.received] == ["ReserveEvse", "CancelReservation"]
    assert clm.received[0].body == sent
    assert clm.received[0].soap_action == f"{R}/ReserveEvse"
    assert clm.received[0].path == "/clm/reservation"
    from_log = read_log(log)
    assert from_log == clm.received
    child = from_log[0].body_child()
    assert child is not None and child.tag == f"{{{R}}}ReserveEvse"
    # the env var names the log when no argument does
    env_log = tmp_path / "env.log"
    monkeypatch.setenv(LOG_ENV_VAR, str(env_log))
    other = make_clm_app("DE*ICE")
    post(other, sample("ReserveEvse"), "ReserveEvse")
    assert [r.operation for r in read_log(env_log)] == ["ReserveEvse"]


def test_delay_holds_the_answer(clm: ClmApp) -> None:
    slow = make_clm_app("DE*ICE", delay_s=0.3)
    started = time.monotonic()
    response(post(slow, sample("ReserveEvse"), "ReserveEvse"), "ReserveEvse")
    assert time.monotonic() - started >= 0.3
    assert len(slow.received) == 1


def test_get_is_a_health_check(clm: ClmApp) -> None:
    result = call(clm, b"", method="GET", path="/clm/reservation", action=None)
    assert result.status == 200
    assert "DE*ICE" in result.text
    assert clm.received == []
