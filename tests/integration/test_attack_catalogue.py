"""SECURITY.md §2, the attack catalogue, against the WSGI app in both validation modes (R10).

Each hostile request must come back as a SOAP Client fault with the precise code, never a
200 carrying attacker-controlled effects, never a generic 500, never a traceback. The
catalogue runs in-process (exactly the WSGI call gunicorn makes); the e2e tier repeats the
transport-sensitive rows over a real socket. Rejection times are measured by `make bench`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gembus.bootstrap import Gembus, build
from gembus.demo import load
from gembus.settings import Settings
from persistence.migrate import upgrade
from tests.support.soap import (
    ACTION,
    MARKETPLACE_NS,
    call,
    envelope,
    get_partner,
    stale,
    wsse_header,
)

ADMIN = ("gembus-admin", "demo-admin-password")


@pytest.fixture(scope="module", params=[True, False], ids=["validating", "not-validating"])
def gembus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gembus]:
    path = tmp_path_factory.mktemp("db") / "gembus.sqlite3"
    settings = Settings(
        database_url=f"sqlite:///{path}",
        secret_key=Fernet.generate_key().decode(),
        validate_requests=request.param,
    )
    built = build(settings)
    upgrade(built.engine)
    load(built.uow, built.vault)
    yield built
    built.engine.dispose()


def auth() -> str:
    return wsse_header(*ADMIN)


def assert_fault(result: Any, code: str) -> None:
    assert result.status in (400, 500), result.text
    assert "Traceback" not in result.text
    assert result.fault_code() == code, result.text


XXE_FILE = '<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
LAUGHS = "".join(
    f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 1}{("&l" + str(i - 1) + ";") * 9}">'
    for i in range(1, 10)
)


def with_prolog(prolog: str, field: str = "ice-charging") -> bytes:
    return prolog.encode() + envelope(get_partner(field), auth())


@pytest.mark.parametrize(
    ("row", "body"),
    [
        (
            "1 DTD with internal entity",
            with_prolog('<!DOCTYPE s:Envelope [<!ENTITY a "X">]>', "&a;"),
        ),
        ("2 XXE local file", with_prolog(XXE_FILE, "&x;")),
        (
            "3 XXE network",
            with_prolog('<!DOCTYPE s:Envelope [<!ENTITY n SYSTEM "http://127.0.0.1:9/x">]>', "&n;"),
        ),
        (
            "4 parameter entity",
            with_prolog('<!DOCTYPE s:Envelope [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p"> %p;]>'),
        ),
        (
            "4b external DTD",
            with_prolog('<!DOCTYPE s:Envelope SYSTEM "http://127.0.0.1:9/ext.dtd">'),
        ),
        (
            "5 billion laughs",
            with_prolog(f'<!DOCTYPE s:Envelope [<!ENTITY l0 "ha">{LAUGHS}]>', "&l9;"),
        ),
        (
            "6 quadratic blow-up",
            with_prolog(f'<!DOCTYPE s:Envelope [<!ENTITY q "{"x" * 50_000}">]>', "&q;" * 3000),
        ),
    ],
)
def test_dtds_are_refused_before_parsing(gembus: Gembus, row: str, body: bytes) -> None:
    result = call(gembus.app, body)
    assert_fault(result, "Client.DTDNotAllowed")
    assert "root:" not in result.text


def test_no_outbound_connection_is_attempted_for_external_entities(gembus: Gembus) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        prolog = f'<!DOCTYPE s:Envelope [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p"> %p;]>'
        assert_fault(call(gembus.app, with_prolog(prolog)), "Client.DTDNotAllowed")
        with pytest.raises(TimeoutError):
            listener.accept()


def test_oversized_declared_body_is_refused_before_reading(gembus: Gembus) -> None:
    body = envelope(get_partner("x" * (3 * 1024 * 1024)), auth())
    assert_fault(call(gembus.app, body), "Client.RequestTooLong")


def test_oversized_chunked_body_is_refused(gembus: Gembus) -> None:
    body = envelope(get_partner("x" * (3 * 1024 * 1024)), auth())
    assert_fault(call(gembus.app, body, content_length=False), "Client.RequestTooLong")


@pytest.mark.parametrize("depth", [40, 300, 10_000])
def test_deep_nesting_is_refused(gembus: Gembus, depth: int) -> None:
    nested = "<m:x>" * depth + "</m:x>" * depth
    body = envelope(f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}">{nested}</m:GetPartner>', auth())
    assert_fault(call(gembus.app, body), "Client.LimitExceeded")


@pytest.mark.parametrize("count", [65, 100_000])
def test_attribute_floods_are_refused(gembus: Gembus, count: int) -> None:
    attributes = " ".join(f'a{i}="1"' for i in range(count))
    body = envelope(
        f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}" {attributes}><m:partnerId>x</m:partnerId></m:GetPartner>',
        auth(),
    )
    assert_fault(call(gembus.app, body), "Client.LimitExceeded")


@pytest.mark.parametrize("count", [33, 50_000])
def test_namespace_declaration_floods_are_refused(gembus: Gembus, count: int) -> None:
    decls = " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(count))
    body = envelope(
        f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}" {decls}><m:partnerId>x</m:partnerId></m:GetPartner>',
        auth(),
    )
    assert_fault(call(gembus.app, body), "Client.LimitExceeded")


def test_large_text_under_the_limit_is_bounded_by_the_contract(gembus: Gembus) -> None:
    result = call(gembus.app, envelope(get_partner("a" * 1_900_000), auth()))
    expected = (
        "Client.SchemaValidation" if gembus.settings.validate_requests else "Client.UnknownPartner"
    )
    assert_fault(result, expected)


@pytest.mark.parametrize("raw", [b"\xff\xfe\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80"])
def test_malformed_utf8_is_an_encoding_fault(gembus: Gembus, raw: bytes) -> None:
    body = envelope(get_partner("ice-charging"), auth()).replace(b"ice-charging", b"ice" + raw)
    assert_fault(call(gembus.app, body), "Client.InvalidEncoding")


def test_utf7_and_utf16_are_refused(gembus: Gembus) -> None:
    utf7 = b'<?xml version="1.0" encoding="UTF-7"?>' + envelope(get_partner(), auth())
    assert_fault(call(gembus.app, utf7), "Client.InvalidEncoding")
    utf16 = envelope(get_partner(), auth()).decode().encode("utf-16")
    assert_fault(call(gembus.app, utf16), "Client.InvalidEncoding")
    latin = envelope(get_partner(), auth())
    assert_fault(
        call(gembus.app, latin, content_type="text/xml; charset=iso-8859-1"),
        "Client.InvalidEncoding",
    )


def test_xinclude_is_never_processed(gembus: Gembus) -> None:
    include = (
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" '
        'parse="text"/>'
    )
    body = envelope(
        f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}"><m:partnerId>{include}</m:partnerId></m:GetPartner>',
        auth(),
    )
    result = call(gembus.app, body)
    assert "root:" not in result.text
    # the unqualified href attribute is refused by the guard before any XInclude could matter
    assert_fault(result, "Client.EncodingNotSupported")


def test_processing_instructions_are_refused_and_comments_are_not_data(gembus: Gembus) -> None:
    assert_fault(
        call(gembus.app, envelope(get_partner("ice-<?pi x?>charging"), auth())),
        "Client.PINotAllowed",
    )
    assert_fault(
        call(gembus.app, b"<?pi x?>" + envelope(get_partner(), auth())), "Client.PINotAllowed"
    )
    result = call(gembus.app, envelope(get_partner("ice-<!--c-->charging"), auth()))
    assert result.status == 200 and "ICE Charging GmbH" in result.text


def test_soap_encoding_href_cycles_are_refused(gembus: Gembus) -> None:
    body = envelope(
        f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}"><m:partnerId href="#r1"/></m:GetPartner>', auth()
    ).replace(b"</s:Body>", b'<m id="r1"><c href="#r1"/></m></s:Body>')
    result = call(gembus.app, body)
    assert result.status in (400, 500) and result.fault_code() in (
        "Client.EncodingNotSupported",
        "Client.AmbiguousEnvelope",
    )
    single = envelope(
        f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}"><m:partnerId href="#r1"/></m:GetPartner>', auth()
    )
    assert_fault(call(gembus.app, single), "Client.EncodingNotSupported")


def test_soapaction_must_match_the_body_operation(gembus: Gembus) -> None:
    result = call(
        gembus.app, envelope(get_partner(), auth()), action=f"{MARKETPLACE_NS}/RegisterPartner"
    )
    assert_fault(result, "Client.ActionMismatch")
    assert_fault(
        call(gembus.app, envelope(get_partner(), auth()), action=None), "Client.ActionMismatch"
    )


def test_two_bodies_or_two_operations_are_ambiguous(gembus: Gembus) -> None:
    two_children = envelope(get_partner() + get_partner("tnm-mobility"), auth())
    assert_fault(call(gembus.app, two_children), "Client.AmbiguousEnvelope")
    two_bodies = envelope(get_partner(), auth()).replace(
        b"</s:Envelope>", b"<s:Body/></s:Envelope>"
    )
    assert_fault(call(gembus.app, two_bodies), "Client.AmbiguousEnvelope")
    wrapped = envelope(
        get_partner(),
        auth()
        + f"<w:Wrapper xmlns:w='urn:x' xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>{get_partner('tnm-mobility')}</s:Body></w:Wrapper>",
    )
    assert_fault(call(gembus.app, wrapped), "Client.AmbiguousEnvelope")


def test_duplicate_fields(gembus: Gembus) -> None:
    body = envelope(
        f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}"><m:partnerId>ice-charging</m:partnerId>'
        f"<m:partnerId>tnm-mobility</m:partnerId></m:GetPartner>",
        auth(),
    )
    result = call(gembus.app, body)
    if gembus.settings.validate_requests:
        assert_fault(result, "Client.SchemaValidation")
    else:  # validation off is an explicit, named choice: spyne binds the last value, no fault
        assert result.status == 200 and "Traceback" not in result.text


def test_wrong_soap_version_is_version_mismatch(gembus: Gembus) -> None:
    soap12_as_11 = envelope(get_partner(), auth(), soap12=True)
    assert_fault(call(gembus.app, soap12_as_11), "Client.VersionMismatch")
    foreign = envelope(get_partner(), auth()).replace(
        b"http://schemas.xmlsoap.org/soap/envelope/", b"urn:not-soap"
    )
    assert_fault(call(gembus.app, foreign), "Client.VersionMismatch")


def test_ws_addressing_reply_to_is_ignored(gembus: Gembus) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        reply_to = (
            f'<wsa:ReplyTo xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>'
            f"http://127.0.0.1:{listener.getsockname()[1]}/victim</wsa:Address></wsa:ReplyTo>"
        )
        result = call(gembus.app, envelope(get_partner(), auth() + reply_to))
        assert result.status == 200 and "ICE Charging GmbH" in result.text
        with pytest.raises(TimeoutError):
            listener.accept()


def test_header_floods_and_unknown_must_understand(gembus: Gembus) -> None:
    flood = "".join(f"<h{i} xmlns='urn:h'/>" for i in range(1000))
    assert_fault(call(gembus.app, envelope(get_partner(), auth() + flood)), "Client.LimitExceeded")
    must = "<x:Billing xmlns:x='urn:x' xmlns:s='http://schemas.xmlsoap.org/soap/envelope/' s:mustUnderstand='1'/>"
    assert_fault(call(gembus.app, envelope(get_partner(), auth() + must)), "Client.MustUnderstand")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "required"),
        ("wrong", "authentication failed"),
        ("stale", "stale Created"),
        ("text", "only PasswordDigest"),
        ("unknown", "authentication failed"),
    ],
)
def test_authentication_failures(gembus: Gembus, header: str, reason: str) -> None:
    headers = {
        "": "",
        "wrong": wsse_header("gembus-admin", "not-the-password"),
        "stale": wsse_header(*ADMIN, created=stale(20)),
        "text": wsse_header(*ADMIN, digest=False),
        "unknown": wsse_header("nobody-here", "whatever-password"),
    }
    result = call(gembus.app, envelope(get_partner(), headers[header]))
    assert_fault(result, "Client.Authentication")
    assert reason in result.text


def test_replayed_message_is_rejected(gembus: Gembus) -> None:
    body = envelope(get_partner(), auth())
    assert call(gembus.app, body).status == 200
    replay = call(gembus.app, body)
    assert_fault(replay, "Client.Authentication")
    assert "replayed nonce" in replay.text


def test_soap12_faults_use_400_and_qualified_subcodes(gembus: Gembus) -> None:
    body = envelope(get_partner("nobody"), auth(), soap12=True)
    result = call(
        gembus.app,
        body,
        content_type=f'application/soap+xml; charset=utf-8; action="{ACTION}"',
        action=None,
    )
    assert result.status == 400
    assert "<soapenv:Value>soapenv:Sender</soapenv:Value>" in result.text
    assert 'xmlns:g="urn:gembus:common:v1"' in result.text and "g:UnknownPartner" in result.text


def test_unknown_operation_and_unknown_family(gembus: Gembus) -> None:
    body = envelope(f'<m:StealEverything xmlns:m="{MARKETPLACE_NS}"/>', auth())
    assert_fault(call(gembus.app, body), "Client.UnknownOperation")
    assert call(gembus.app, envelope(get_partner(), auth()), path="/services/nope").status == 404


def test_not_xml_at_all(gembus: Gembus, tmp_path: Path) -> None:
    assert_fault(call(gembus.app, b"hello"), "Client.XMLSyntaxError")
    assert_fault(call(gembus.app, b""), "Client.XMLSyntaxError")
    assert_fault(
        call(gembus.app, envelope(get_partner(), auth()), content_type="application/json"),
        "Client.InvalidContentType",
    )
