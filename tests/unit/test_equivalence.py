"""The served-WSDL equivalence check must notice every kind of change a client would notice."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bus.equivalence import differences, signature
from tests.conftest import REPO


def _copy_contracts(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "wsdl", tmp_path / "wsdl")
    shutil.copytree(REPO / "xsd", tmp_path / "xsd")
    return tmp_path / "wsdl" / "marketplace.wsdl"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _sig(wsdl: Path) -> dict[str, object]:
    return signature(wsdl.read_bytes(), wsdl.as_uri())


CHANGES: dict[str, Callable[[Path], None]] = {
    "occurrence": lambda root: _edit(
        root / "xsd/marketplace.xsd", 'maxOccurs="5"', 'maxOccurs="6"'
    ),
    "optional field": lambda root: _edit(
        root / "xsd/marketplace.xsd",
        '<xs:element name="legalName" type="cmn:NonEmptyString255"/>',
        '<xs:element name="legalName" type="cmn:NonEmptyString255" minOccurs="0"/>',
    ),
    "pattern": lambda root: _edit(
        root / "xsd/common/identifiers.xsd",
        "[a-z0-9][a-z0-9\\-]{2,63}",
        "[a-z0-9][a-z0-9\\-]{2,62}",
    ),
    "enumeration": lambda root: _edit(
        root / "xsd/common/types.xsd", '<xs:enumeration value="Dso"/>', ""
    ),
    "soapAction": lambda root: _edit(
        root / "wsdl/marketplace.wsdl", 'v1/GetPartner"', 'v1/GetPartnerX"'
    ),
    "element": lambda root: _edit(
        root / "wsdl/marketplace.wsdl",
        'element="tns:GetPartnerResponse"',
        'element="tns:GetPartner"',
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_client_visible_change_is_a_difference(tmp_path: Path, change: str) -> None:
    wsdl = _copy_contracts(tmp_path)
    before = _sig(wsdl)
    CHANGES[change](tmp_path)
    assert differences(before, _sig(wsdl)) != []


def test_the_address_alone_is_not_a_difference(tmp_path: Path) -> None:
    wsdl = _copy_contracts(tmp_path)
    before = _sig(wsdl)
    _edit(
        wsdl,
        "http://localhost:8000/services/marketplace",
        "https://gembus.example/services/marketplace",
    )
    assert differences(before, _sig(wsdl)) == []
