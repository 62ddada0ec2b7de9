"""Version transforms (bus/transform.py, bus/xslt/): reservation v1 <-> v2 on the samples.

Every output validates against the target version's canonical schema, a sample survives the
round trip unchanged, and the registry, the refusals, the envelope rebuild and the stylesheet
sandbox behave as documented.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from bus.contracts import all_contracts
from bus.soap import SOAP11_ENV, SOAP12_ENV
from bus.transform import (
    XSLT_DIR,
    TransformFailedError,
    TransformRefusedError,
    TransformRegistry,
    XsltTransform,
    default_registry,
    is_fault,
    parse_envelope,
    rewrap,
)
from tests.conftest import REPO

V1 = "urn:gembus:reservation:v1"
V2 = "urn:gembus:reservation:v2"
CMN = "urn:gembus:common:v1"
FIXTURES = REPO / "tests" / "fixtures"
KEYS = {1: "reservation", 2: "reservation_v2"}
SAMPLES = [
    (path, version)
    for version, key in KEYS.items()
    for path in sorted(
        [*FIXTURES.glob(f"requests/{key}/*.xml"), *FIXTURES.glob(f"responses/{key}/*.xml")]
    )
]
PARSER = etree.XMLParser(remove_blank_text=True)


def _ids(samples: list[tuple[Path, int]]) -> list[str]:
    return [f"{p.parent.parent.name}/{p.parent.name}/{p.stem}" for p, _ in samples]


def load(path: Path) -> etree._Element:
    return etree.parse(str(path), PARSER).getroot()


def convert(element: etree._Element, source: int, target: int) -> etree._Element:
    return default_registry().apply("reservation", source, target, element)


def valid_in(version: int, element: etree._Element) -> bool:
    schema = all_contracts()[KEYS[version]].schema
    assert schema.validate(element), schema.error_log
    return True


def v1_reserve(start: str | None, expiry: str) -> etree._Element:
    begin = f"<r:requestedStart>{start}</r:requestedStart>" if start else ""
    return etree.fromstring(
        f'<r:ReserveEvse xmlns:r="{V1}"><r:providerId>NL-TNM</r:providerId>'
        "<r:contractId>NL-TNM-000122045-U</r:contractId><r:evseId>DE*ICE*E1*1</r:evseId>"
        f"{begin}<r:requestedExpiry>{expiry}</r:requestedExpiry></r:ReserveEvse>"
    )


def v2_reserve(start: str | None, minutes: int) -> etree._Element:
    begin = f"<r:requestedStart>{start}</r:requestedStart>" if start else ""
    return etree.fromstring(
        f'<r:ReserveEvse xmlns:r="{V2}"><r:providerId>NL-TNM</r:providerId><r:customer>'
        "<r:contractId>NL-TNM-000122045-U</r:contractId></r:customer>"
        f"<r:evseId>DE*ICE*E1*1</r:evseId>{begin}"
        f"<r:durationMinutes>{minutes}</r:durationMinutes></r:ReserveEvse>"
    )


@pytest.mark.parametrize(("sample", "version"), SAMPLES, ids=_ids(SAMPLES))
def test_every_sample_converts_into_a_valid_message_of_the_other_version(
    sample: Path, version: int
) -> None:
    element = load(sample)
    other = 3 - version
    converted = convert(element, version, other)
    assert valid_in(other, converted)
    assert etree.QName(converted).localname == etree.QName(element).localname
    assert etree.QName(converted).namespace == (V1 if other == 1 else V2)
    # and back: the samples use whole minutes, so nothing is lost
    back = convert(converted, other, version)
    assert etree.tostring(back, method="c14n", exclusive=True) == etree.tostring(
        element, method="c14n", exclusive=True
    )


def test_v1_to_v2_groups_the_customer_and_counts_minutes() -> None:
    converted = convert(load(FIXTURES / "requests/reservation/ReserveEvse.xml"), 1, 2)
    assert [etree.QName(c).localname for c in converted] == [
        "providerId",
        "customer",
        "evseId",
        "partnerReservationId",
        "requestedStart",
        "durationMinutes",
    ]
    customer = converted.find(f"{{{V2}}}customer")
    assert customer is not None
    assert customer.findtext(f"{{{V2}}}contractId") == "NL-TNM-000122045-U"
    assert customer.findtext(f"{{{V2}}}token/{{{CMN}}}tokenSubType") == "mifareDes"
    assert converted.findtext(f"{{{V2}}}durationMinutes") == "30"


def test_v2_response_minutes_become_a_v1_expiry_in_the_starts_offset() -> None:
    converted = convert(load(FIXTURES / "responses/reservation_v2/ReserveEvseResponse.xml"), 2, 1)
    assert converted.findtext(f"{{{V1}}}expiry") == "2012-11-20T11:35:00+01:00"


@pytest.mark.parametrize(
    ("start", "expiry", "minutes"),
    [
        ("2030-01-01T10:00:00Z", "2030-01-01T10:45:59Z", "45"),  # never more than asked
        ("2030-01-01T10:00:00.123456+00:00", "2030-01-01T11:59:59.5+01:00", "59"),
        ("2030-01-01T10:00:00+02:00", "2030-01-01T09:30:00Z", "90"),  # offsets honoured
        ("2030-01-01T10:00:00Z", "2030-01-03T10:00:00Z", "1440"),  # capped to a day
    ],
)
def test_v1_periods_become_whole_minutes(start: str, expiry: str, minutes: str) -> None:
    converted = convert(v1_reserve(start, expiry), 1, 2)
    assert valid_in(2, converted)
    assert converted.findtext(f"{{{V2}}}durationMinutes") == minutes


@pytest.mark.parametrize("expiry", ["2030-01-01T10:00:30Z", "2030-01-01T09:00:00Z", "garbage"])
def test_a_v1_period_under_a_minute_is_refused_with_the_declared_fault(expiry: str) -> None:
    with pytest.raises(TransformRefusedError) as raised:
        convert(v1_reserve("2030-01-01T10:00:00Z", expiry), 1, 2)
    assert raised.value.fault_code == "Client.InvalidReservationPeriod"
    assert raised.value.field == "requestedExpiry" and raised.value.is_client


def test_without_a_start_both_directions_count_from_now() -> None:
    expiry = (datetime.now(UTC) + timedelta(minutes=30, seconds=30)).isoformat()
    converted = convert(v1_reserve(None, expiry), 1, 2)
    assert converted.find(f"{{{V2}}}requestedStart") is None
    assert converted.findtext(f"{{{V2}}}durationMinutes") in ("29", "30")

    before = datetime.now(UTC).replace(microsecond=0)
    back = convert(v2_reserve(None, 20), 2, 1)
    assert valid_in(1, back)
    granted = datetime.fromisoformat(back.findtext(f"{{{V1}}}requestedExpiry") or "")
    assert before + timedelta(minutes=20) <= granted <= datetime.now(UTC) + timedelta(minutes=20)


def test_a_v1_grant_under_a_minute_is_the_providers_error() -> None:
    response = etree.fromstring(
        f'<r:ReserveEvseResponse xmlns:r="{V1}"><r:reservationId>R1</r:reservationId>'
        "<r:evseId>DE*ICE*E1*1</r:evseId><r:start>2030-01-01T10:00:00Z</r:start>"
        "<r:expiry>2030-01-01T10:00:00Z</r:expiry></r:ReserveEvseResponse>"
    )
    with pytest.raises(TransformRefusedError) as raised:
        convert(response, 1, 2)
    assert raised.value.fault_code == "Server.InvalidResponse" and not raised.value.is_client


def test_the_registry_is_compiled_once_and_keyed_by_family_and_versions() -> None:
    registry = default_registry()
    assert registry is default_registry()
    assert list(registry) == [("reservation", 1, 2), ("reservation", 2, 1)]
    first = registry.get("reservation", 1, 2)
    assert isinstance(first, XsltTransform) and first is registry.get("reservation", 1, 2)
    assert registry.bridges("reservation", 1, 2) and registry.bridges("reservation", 2, 2)
    assert not registry.bridges("reservation", 1, 3)
    with pytest.raises(TransformFailedError):
        registry.apply("reservation", 1, 3, v1_reserve(None, "2030-01-01T10:00:00Z"))


def test_a_plain_function_can_be_a_transform() -> None:
    registry = TransformRegistry()

    def rename(element: etree._Element) -> etree._Element:
        return etree.Element("{urn:x:v2}Ping")

    registry.register("x", 1, 2, rename)
    assert registry.apply("x", 1, 2, etree.Element("{urn:x:v1}Ping")).tag == "{urn:x:v2}Ping"
    assert not registry.bridges("x", 1, 2)  # the reply direction is missing
    with pytest.raises(ValueError, match="exists"):
        registry.register("x", 1, 2, rename)
    with pytest.raises(ValueError, match="passed through"):
        registry.register("x", 2, 2, rename)


def test_stylesheets_cannot_read_files_or_the_network(tmp_path: Path) -> None:
    sneaky = tmp_path / "x_v1_to_v2.xsl"
    sneaky.write_text(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><leak><xsl:copy-of select="document(\'/etc/hostname\')"/>'
        "</leak></xsl:template></xsl:stylesheet>"
    )
    with pytest.raises(TransformFailedError):
        XsltTransform(sneaky)(etree.Element("a"))
    entity = tmp_path / "y_v1_to_v2.xsl"
    entity.write_text(
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><leak>&e;</leak></xsl:template></xsl:stylesheet>'
    )
    leak = XsltTransform(entity)(etree.Element("a"))
    assert not (leak.text or "").strip()  # the entity is never resolved


def test_the_stylesheet_names_follow_the_registry_convention() -> None:
    assert sorted(p.name for p in XSLT_DIR.glob("*.xsl")) == [
        "reservation_v1_to_v2.xsl",
        "reservation_v2_to_v1.xsl",
    ]


@pytest.mark.parametrize("soap_ns", [SOAP11_ENV, SOAP12_ENV])
def test_rewrap_keeps_the_soap_version_and_the_header(soap_ns: str) -> None:
    original = etree.fromstring(
        f'<s:Envelope xmlns:s="{soap_ns}"><s:Header><w:Security xmlns:w="urn:w">t</w:Security>'
        f'</s:Header><s:Body><r:CancelReservation xmlns:r="{V1}"/></s:Body></s:Envelope>'
    )
    rebuilt = rewrap(original, etree.Element(f"{{{V2}}}CancelReservation"))
    envelope, child = parse_envelope(rebuilt)
    assert etree.QName(envelope).namespace == soap_ns and envelope.prefix == "s"
    assert envelope.findtext(f"{{{soap_ns}}}Header/{{urn:w}}Security") == "t"
    assert child is not None and child.tag == f"{{{V2}}}CancelReservation"
    assert original.find(f"{{{soap_ns}}}Header") is not None  # the original is left alone
    assert not is_fault(child)


def test_replies_that_are_not_soap_are_refused_and_faults_recognised() -> None:
    with pytest.raises(TransformFailedError):
        parse_envelope(b"<html>oops</html>")
    with pytest.raises(TransformFailedError):
        parse_envelope(b"not xml")
    _, fault = parse_envelope(
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><s:Fault/></s:Body></s:Envelope>'.encode()
    )
    assert fault is not None and is_fault(fault)


def test_transforming_a_body_child_in_place_leaves_the_request_intact_and_frees_cleanly() -> None:
    """Regression: xsl:strip-space on a Body child (a subtree) corrupted the heap at exit."""
    script = f"""
import gc
from lxml import etree
from bus.transform import default_registry
sample = open({str(FIXTURES / "requests/reservation/ReserveEvse.xml")!r}, "rb").read()
envelope = (b'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body>'
            + sample.split(b"?>", 1)[1] + b'</s:Body></s:Envelope>')
for _ in range(200):
    root = etree.fromstring(envelope)
    before = etree.tostring(root)
    default_registry().apply("reservation", 1, 2, root[-1][0])
    assert etree.tostring(root) == before
    del root
gc.collect()
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
