"""The guard's byte-level fast path agrees with the walk it lets small requests skip."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bus.guard import _BODY_TAGS, Limits, _walk, _within_limits_by_bytes
from tests.support.soap import envelope, get_partner, wsse_header

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LIMITS = Limits()


def _samples() -> list[bytes]:
    files = sorted((FIXTURES / "requests").rglob("*.xml"))
    assert len(files) > 50
    return [f.read_bytes() for f in files]


def test_every_sample_request_the_fast_path_takes_passes_the_walk_with_one_body() -> None:
    taken = 0
    for raw in _samples():
        if not _within_limits_by_bytes(raw, LIMITS):
            continue
        taken += 1
        root = etree.fromstring(raw)
        assert _walk(root, LIMITS, check_namespaces=True) == sum(1 for _ in root.iter(*_BODY_TAGS))
    assert taken > 20  # the common small request really skips the walk


@pytest.mark.parametrize(
    "body",
    [
        envelope(get_partner("a<?pi x?>b")),  # a PI inside the tree
        envelope(get_partner().replace("<m:partnerId>", '<m:partnerId href="#r">')),
        envelope(get_partner().replace("<m:partnerId>", '<m:partnerId id = "r">')),
        envelope(get_partner().replace("<m:GetPartner ", "<m:GetPartner s:encodingStyle='x' ")),
        envelope("<a>" * 40 + "</a>" * 40),  # deeper than 32
        envelope(get_partner().replace("<m:partnerId>", "<m:partnerId " + "a=''" * 40 + ">")),
    ],
    ids=["pi", "href", "unqualified-id", "encodingStyle", "deep", "many-attributes"],
)
def test_what_the_walk_must_see_never_takes_the_fast_path(body: bytes) -> None:
    assert not _within_limits_by_bytes(body, LIMITS)


def test_a_signed_request_with_wsu_ids_takes_the_fast_path() -> None:
    token = wsse_header("tnm-mobility", "secret").replace(
        "<wsse:UsernameToken", '<wsse:UsernameToken wsu:Id="UsernameToken-1"'
    )
    assert "wsu:Id=" in token
    assert _within_limits_by_bytes(envelope(get_partner(), token), LIMITS)
