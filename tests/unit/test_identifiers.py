"""Identifier value objects against the XSD and reference/DOMAIN.md section 7.

The case table in tests/fixtures/identifiers.json is shared: every case states what the
compiled XSD type must say (``syntax_valid``) and what ``domain.identifiers`` must say
(``valid``, ``key``). The XSD may accept what Python rejects (check digits, E.164 mapping,
CDR prefix rule), never the other way round.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from domain.identifiers import (
    ContractId,
    EvseId,
    InvalidIdentifier,
    OperatorId,
    ProviderId,
    SdrId,
    din_check_digit,
    emaid_check_digit,
)

REPO = Path(__file__).resolve().parents[2]
COMMON_XSD = REPO / "xsd" / "common" / "common.xsd"
FIXTURE = REPO / "tests" / "fixtures" / "identifiers.json"
TEST_NS = "urn:gembus:test:identifiers"

# fixture kind -> (wrapper element name, XSD type in urn:gembus:common:v1)
ELEMENTS = {
    "evse_id": ("evse", "EvseIdType"),
    "contract_id": ("contract", "ContractIdType"),
    "operator_id": ("operator", "OperatorIdType"),
    "provider_id": ("provider", "ProviderIdType"),
    "sdr_id": ("sdr", "SdrIdType"),
    "partner_id": ("partner", "PartnerIdType"),
}
KINDS = ["evse_id", "contract_id", "operator_id", "provider_id", "sdr_id"]
MIN_CASES = {"evse_id": 12, "contract_id": 12, "operator_id": 6, "provider_id": 6, "sdr_id": 6}

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

Parsed = EvseId | ContractId | OperatorId | ProviderId | SdrId


def _load_cases() -> dict[str, list[dict[str, Any]]]:
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return {kind: data[kind] for kind in KINDS}


CASES = _load_cases()
ALL_CASES = [
    pytest.param(kind, case, id=f"{kind}-{i}-{case['value']!r}")
    for kind in KINDS
    for i, case in enumerate(CASES[kind])
]


def _wrapper_schema_text() -> str:
    elements = "\n".join(
        f'  <xs:element name="{name}" type="c:{xsd_type}"/>' for name, xsd_type in ELEMENTS.values()
    )
    return f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns:c="urn:gembus:common:v1"
           targetNamespace="{TEST_NS}"
           elementFormDefault="qualified">
  <xs:import namespace="urn:gembus:common:v1" schemaLocation="{COMMON_XSD.as_uri()}"/>
{elements}
</xs:schema>"""


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.fromstring(_wrapper_schema_text().encode(), parser))


def xsd_accepts(schema: etree.XMLSchema, kind: str, value: str) -> bool:
    """Validate ``<t:{element}>value</t:{element}>`` against the wrapper schema."""
    element = etree.Element(f"{{{TEST_NS}}}{ELEMENTS[kind][0]}", nsmap={"t": TEST_NS})
    element.text = value
    # Round-trip through the serialiser so the value is what a parser would see on the wire.
    doc = etree.fromstring(etree.tostring(element))
    assert doc.text == (value or None)
    return bool(schema.validate(doc))


def parse(kind: str, case: dict[str, Any]) -> Parsed:
    value: str = case["value"]
    parsers: dict[str, Callable[[str], Parsed]] = {
        "evse_id": EvseId.parse,
        "contract_id": ContractId.parse,
        "operator_id": OperatorId.parse,
        "provider_id": ProviderId.parse,
        "sdr_id": lambda v: SdrId.parse(v, uploader_operator_key=case.get("uploader")),
    }
    return parsers[kind](value)


def python_verdict(kind: str, case: dict[str, Any]) -> tuple[bool, str | None]:
    try:
        parsed = parse(kind, case)
    except InvalidIdentifier as exc:
        assert exc.kind == kind
        assert exc.reason
        return False, None
    return True, parsed.key


# --------------------------------------------------------------------------- the case table


def test_fixture_is_complete() -> None:
    """The table keeps its coverage: a shrunken table would make the other tests vacuous."""
    for kind in KINDS:
        cases = CASES[kind]
        assert len(cases) >= MIN_CASES[kind], kind
        assert any(c["valid"] for c in cases) and any(not c["valid"] for c in cases), kind
        assert any(c["syntax_valid"] and not c["valid"] for c in cases) or kind == "provider_id"
        assert any(c["value"] == "" for c in cases), kind
        assert any(c["value"].endswith("\n") for c in cases), kind
        for c in cases:
            assert set(c) >= {"value", "syntax_valid", "valid", "key", "note"}, c
            assert (c["key"] is not None) == c["valid"], c
            assert c["syntax_valid"] or not c["valid"], c
    contracts = {c["value"]: c for c in CASES["contract_id"]}
    for spec_example in ("DE8AACA2B3C4D5N", "DE-8AA-CA2B3C4D5-N", "DE-8EO-CAet5e4XY-3"):
        assert contracts[spec_example]["syntax_valid"] and not contracts[spec_example]["valid"]
    assert contracts["NL-TNM-012204-5"]["key"] == contracts["NL-TNM-000122045-U"]["key"]
    evse = {c["value"]: c for c in CASES["evse_id"]}
    assert not evse["DE*ICE*E1\n"]["syntax_valid"]


@pytest.mark.parametrize(("kind", "case"), ALL_CASES)
def test_xsd_type_says_syntax_valid(
    schema: etree.XMLSchema, kind: str, case: dict[str, Any]
) -> None:
    assert xsd_accepts(schema, kind, case["value"]) is case["syntax_valid"]


@pytest.mark.parametrize(("kind", "case"), ALL_CASES)
def test_python_says_valid_and_key(kind: str, case: dict[str, Any]) -> None:
    assert python_verdict(kind, case) == (case["valid"], case["key"])


@pytest.mark.parametrize(("kind", "case"), ALL_CASES)
def test_same_answers(schema: etree.XMLSchema, kind: str, case: dict[str, Any]) -> None:
    """Whatever the XSD rejects, Python rejects too (checked live, not from the table)."""
    accepted, _ = python_verdict(kind, case)
    if not xsd_accepts(schema, kind, case["value"]):
        assert not accepted
    if accepted:
        assert xsd_accepts(schema, kind, case["value"])


VALID_CASES = [
    pytest.param(kind, case, id=f"{kind}-{case['value']!r}")
    for kind in KINDS
    for case in CASES[kind]
    if case["valid"]
]


@pytest.mark.parametrize(("kind", "case"), VALID_CASES)
def test_wire_is_kept_exactly(kind: str, case: dict[str, Any]) -> None:
    assert parse(kind, case).wire == case["value"]


@pytest.mark.parametrize(
    ("value", "valid"), [("ice-gmbh", True), ("a1b", True), ("ab", False), ("ICE", False)]
)
def test_partner_id_type(schema: etree.XMLSchema, value: str, valid: bool) -> None:
    assert xsd_accepts(schema, "partner_id", value) is valid


# --------------------------------------------------------------------------- check digits

EMAID_VECTORS = [
    ("NN123ABCDEFGHI", "T"),
    ("FRXYZ123456789", "2"),
    ("ITA1B2C3E4F5G6", "4"),
    ("ESZU8WOX834H1D", "R"),
    ("PT73902837ABCZ", "Z"),
    ("DE83DUIEN83QGZ", "D"),
    ("DE83DUIEN83ZGQ", "M"),
    ("DE8AA001234567", "0"),
    ("NLTNM000122045", "U"),
    # spec examples whose printed check digit is wrong: what they compute to
    ("DE8AACA2B3C4D5", "L"),
    ("DE8AA00123A563", "M"),
    ("DE8EOCAet5e4XY", "T"),
]
DIN_VECTORS = [
    ("DEBMW0010LY", "3"),
    ("NLTNM012204", "5"),
    ("INTNM000071", "9"),
    ("INTNM000110", "X"),
    ("DE8EOAet5e4", "9"),
]


@pytest.mark.parametrize(("first14", "check"), EMAID_VECTORS)
def test_emaid_check_digit_vectors(first14: str, check: str) -> None:
    assert emaid_check_digit(first14) == check
    assert emaid_check_digit(first14.lower()) == check


@pytest.mark.parametrize(("first11", "check"), DIN_VECTORS)
def test_din_check_digit_vectors(first11: str, check: str) -> None:
    assert din_check_digit(first11) == check
    assert din_check_digit(first11.lower()) == check


@pytest.mark.parametrize(
    "bad", ["", "DE8AACA2B3C4D", "DE8AACA2B3C4D5L", "DE-8AACA2B3C4D", "DE8AACA2B3C4\u212a5"]
)
def test_emaid_check_digit_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError, match="14 characters"):
        emaid_check_digit(bad)


@pytest.mark.parametrize("bad", ["", "DEBMW0010L", "DEBMW0010LY3", "DE*BMW0010L"])
def test_din_check_digit_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError, match="11 characters"):
        din_check_digit(bad)


# The DOMAIN.md section 7.2 reference snippet, verbatim in behaviour: an independent oracle.
def _ref_rows(ch: str) -> tuple[tuple[int, int], tuple[int, int]]:
    k = ALNUM.index(ch)
    q = k // 9
    return (q >> 1, q & 1), (k // 3 % 3, k % 3)


def _ref_vm(v: tuple[int, ...], m: tuple[tuple[int, ...], ...], n: int) -> tuple[int, int]:
    return ((v[0] * m[0][0] + v[1] * m[1][0]) % n, (v[0] * m[0][1] + v[1] * m[1][1]) % n)


def _ref_mm(
    a: tuple[tuple[int, ...], ...], b: tuple[tuple[int, ...], ...], n: int
) -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(sum(a[i][k] * b[k][j] for k in range(2)) % n for j in range(2)) for i in range(2)
    )


def _ref_emaid_check_digit(first14: str) -> str:
    p1_base, p2_base = ((0, 1), (1, 1)), ((0, 1), (1, 2))
    t1 = t2 = (0, 0)
    p1: tuple[tuple[int, ...], ...] = p1_base
    p2: tuple[tuple[int, ...], ...] = p2_base
    for ch in first14.upper():
        r1, r2 = _ref_rows(ch)
        a, b = _ref_vm(r1, p1, 2), _ref_vm(r2, p2, 3)
        t1 = ((t1[0] + a[0]) % 2, (t1[1] + a[1]) % 2)
        t2 = ((t2[0] + b[0]) % 3, (t2[1] + b[1]) % 3)
        p1, p2 = _ref_mm(p1, p1_base, 2), _ref_mm(p2, p2_base, 3)
    t2 = _ref_vm(t2, ((0, 2), (2, 1)), 3)
    return next(c for c in ALNUM if _ref_rows(c) == (t1, t2))


# --------------------------------------------------------------------------- property (e)


def _random_first14(rng: random.Random) -> str:
    letters = ALNUM[10:]
    return "".join(rng.choice(letters) for _ in range(2)) + "".join(
        rng.choice(ALNUM) for _ in range(12)
    )


def _random_case(rng: random.Random, text: str) -> str:
    return "".join(ch.lower() if rng.random() < 0.3 else ch for ch in text)


def test_random_emaids_same_key_with_and_without_hyphens(schema: etree.XMLSchema) -> None:
    rng = random.Random(15118)
    seen_checks: set[str] = set()
    for _ in range(200):
        first14 = _random_first14(rng)
        check = emaid_check_digit(first14)
        assert check == _ref_emaid_check_digit(first14)
        seen_checks.add(check)
        cc, prov, inst = first14[:2], first14[2:5], first14[5:]
        hyphenated = _random_case(rng, f"{cc}-{prov}-{inst}-{check}")
        plain = _random_case(rng, f"{first14}{check}")
        with_hyphens, without = ContractId.parse(hyphenated), ContractId.parse(plain)
        assert with_hyphens.key == without.key == first14
        assert ContractId.parse(f"{cc}-{prov}-{inst}").key == first14
        assert with_hyphens.check_digit_valid is True and without.check_digit == check
        assert xsd_accepts(schema, "contract_id", hyphenated)
        wrong = ALNUM[(ALNUM.index(check) + rng.randrange(1, 36)) % 36]
        with pytest.raises(InvalidIdentifier, match=f"expected {check}"):
            ContractId.parse(f"{first14}{wrong}")
    assert len(seen_checks) > 20  # the generator exercises most of the check alphabet


# --------------------------------------------------------------------------- value objects


def test_invalid_identifier_names_kind_and_reason() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        ContractId.parse("DE8AACA2B3C4D5N")
    assert isinstance(info.value, ValueError)
    assert info.value.kind == "contract_id"
    assert info.value.reason == "bad check digit: expected L"
    assert info.value.value == "DE8AACA2B3C4D5N"


def test_din_bad_check_digit_reason() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        ContractId.parse("DE*8EO*Aet5e4*3")
    assert info.value.reason == "bad check digit: expected 9"


def test_unmapped_e164_reason() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        EvseId.parse("+99*823*1")
    assert info.value.kind == "evse_id"
    assert "unmapped E.164" in info.value.reason
    with pytest.raises(InvalidIdentifier, match="unmapped"):
        OperatorId.parse("+7*823")


def test_legacy_check_digits_downgrades_mismatch() -> None:
    emaid = ContractId.parse("DE-8AA-CA2B3C4D5-N", legacy_check_digits=True)
    assert (emaid.key, emaid.check_digit, emaid.check_digit_valid) == (
        "DE8AACA2B3C4D5",
        "N",
        False,
    )
    din = ContractId.parse("nl-tnm-012204-4", legacy_check_digits=True)
    assert (din.key, din.form, din.check_digit_valid) == ("NLTNM000122044", "din", False)
    good = ContractId.parse("DE-8AA-CA2B3C4D5-L", legacy_check_digits=True)
    assert good.check_digit_valid is True
    with pytest.raises(InvalidIdentifier):  # legacy does not relax syntax
        ContractId.parse("DE-8AC-C12E456L89-Y", legacy_check_digits=True)


def test_contract_id_helpers() -> None:
    emaid = ContractId.parse("de-8aa-ca2b3c4d5-l")
    assert (emaid.form, emaid.provider_key, emaid.check_digit) == ("emaid", "DE8AA", "L")
    assert emaid.check_digit_valid is True
    bare = ContractId.parse("DE-8AA-CA2B3C4D5")
    assert (bare.check_digit, bare.check_digit_valid) == (None, None)
    din = ContractId.parse("in*tnm*000110*x")
    assert (din.form, din.provider_key, din.check_digit) == ("din", "INTNM", "X")
    assert ContractId.parse("DE*BMW*0010LY*3").provider_key == ProviderId.parse("DE*BMW").key


def test_evse_id_helpers() -> None:
    iso = EvseId.parse("de*ice*e123456*7")
    assert (iso.form, iso.operator_key) == ("iso", "DEICE")
    assert iso.operator_key == OperatorId.parse("DE*ICE").key
    din = EvseId.parse("+49*823*1234*5678")
    assert (din.form, din.operator_key, din.key) == ("din", "DE823", "DE823E12345678")
    assert din.operator_key == OperatorId.parse("+49*823").key
    assert din.key == EvseId.parse("DE*823*E1234*5678").key


def test_sdr_id_prefix_rule() -> None:
    sdr = SdrId.parse("DEICE0000000001", uploader_operator_key=OperatorId.parse("de*ice").key)
    assert (sdr.key, sdr.operator_key) == ("DEICE0000000001", "DEICE")
    with pytest.raises(InvalidIdentifier) as info:
        SdrId.parse("DEICE0000000001", uploader_operator_key="DEABC")
    assert info.value.kind == "sdr_id" and "DEABC" in info.value.reason
    assert SdrId.parse("DEICE0000000001").key == "DEICE0000000001"


@pytest.mark.parametrize(
    "obj",
    [
        EvseId.parse("DE*ICE*E1"),
        ContractId.parse("DE8AACA2B3C4D5"),
        OperatorId.parse("DEICE"),
        ProviderId.parse("DE8AA"),
        SdrId.parse("DEICE1"),
    ],
)
def test_value_objects_are_frozen(obj: Parsed) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.key = "X"  # type: ignore[misc]
