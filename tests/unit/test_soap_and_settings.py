"""Fault rendering, settings parsing and the WS-Security checks, with no sockets and no database."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from bus.contracts import all_contracts
from bus.soap import Fault, SoapVersion, build_fault, fault_http_status
from bus.wsse import Authenticator, Consumed, Credential
from gembus.errors import AuthenticationError, NotFoundError, UnavailableError
from gembus.settings import Settings, SettingsError
from tests.support.soap import envelope, get_partner, wsse_header

COMMON = "{urn:gembus:common:v1}"


def test_settings_come_from_the_environ_with_types() -> None:
    settings = Settings.from_environ(
        {
            "GEMBUS_MAX_DEPTH": "12",
            "GEMBUS_ALLOW_PASSWORD_TEXT": "yes",
            "GEMBUS_DATABASE_URL": "postgresql+psycopg2://x/y",
        }
    )
    assert settings.max_depth == 12 and settings.allow_password_text is True
    assert not settings.is_sqlite
    assert (
        Settings.from_environ({}).is_sqlite
        and Settings.from_environ({}).allow_password_text is False
    )


@pytest.mark.parametrize(
    ("name", "value"), [("GEMBUS_MAX_DEPTH", "deep"), ("GEMBUS_VALIDATE_REQUESTS", "maybe")]
)
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environ({name: value})


def test_soap11_fault_carries_the_declared_detail() -> None:
    fault = Fault.from_error(NotFoundError("Partner", "no partner x", field="partnerId"), "m-1")
    doc = etree.fromstring(build_fault(SoapVersion.SOAP11, fault))
    assert doc.findtext(".//faultcode") == "soapenv:Client.UnknownPartner"
    detail = doc.find(f".//{COMMON}gembusFault")
    assert all_contracts()["marketplace"].schema.validate(detail)
    assert [detail.findtext(f"{COMMON}{n}") for n in ("code", "field", "messageId")] == [
        "Client.UnknownPartner",
        "partnerId",
        "m-1",
    ]
    assert fault_http_status(SoapVersion.SOAP11, fault) == 500


def test_soap12_fault_qualifies_the_subcode_and_uses_400_for_sender() -> None:
    client_fault = Fault.from_error(NotFoundError("Partner", "no partner x"), None)
    doc = etree.fromstring(build_fault(SoapVersion.SOAP12, client_fault))
    values = doc.findall(".//{http://www.w3.org/2003/05/soap-envelope}Value")
    assert [v.text for v in values] == ["soapenv:Sender", "g:UnknownPartner"]
    assert values[1].nsmap["g"] == "urn:gembus:common:v1"  # a resolvable QName
    assert fault_http_status(SoapVersion.SOAP12, client_fault) == 400
    server_fault = Fault.from_error(UnavailableError(), None)
    assert fault_http_status(SoapVersion.SOAP12, server_fault) == 500
    assert "soapenv:Receiver" in build_fault(SoapVersion.SOAP12, server_fault).decode()


class FakeIdentityStore:
    """In-memory identity store with a change version, like gembus.identity's."""

    def __init__(self, active: bool = True) -> None:
        self.active = active
        self.version = 0
        self.password = "s3cret-password"
        self.seen: dict[tuple[str, str], datetime] = {}
        self.fresh_reads = 0

    def credential_for(self, username: str, *, fresh: bool = False) -> Credential | None:
        self.fresh_reads += fresh
        if username != "ice":
            return None
        return Credential(username, self.password, self.active, None, self.version)

    def consume(self, username: str, nonce: str, expires_at: datetime, version: int) -> Consumed:
        new = (username, nonce) not in self.seen
        self.seen.setdefault((username, nonce), expires_at)
        return Consumed(new, version == self.version)


def _header(xml: str) -> etree._Element:
    return etree.fromstring(envelope(get_partner(), xml))[0]


def test_digest_is_checked_and_nonces_are_kept_twice_the_window() -> None:
    nonces = FakeIdentityStore()
    auth = Authenticator(nonces, window_s=300)
    created = datetime.now(UTC).replace(microsecond=0)
    assert (
        auth.authenticate(
            _header(wsse_header("ice", "s3cret-password", nonce=b"n1", created=created))
        ).partner_id
        == "ice"
    )
    (expires,) = nonces.seen.values()
    assert expires == created + timedelta(seconds=600)


# Headers are built inside the test: a Created stamped at collection time goes stale in a
# long suite run.
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: wsse_header("ice", "wrong-password"), "authentication failed"),
        (lambda: wsse_header("nobody", "s3cret-password"), "authentication failed"),
        (
            lambda: wsse_header(
                "ice", "s3cret-password", created=datetime.now(UTC) + timedelta(minutes=6)
            ),
            "stale",
        ),
        (lambda: wsse_header("ice", "s3cret-password", digest=False), "only PasswordDigest"),
        (lambda: wsse_header("ice", "s3cret-password") * 2, "exactly one wsse:Security"),
    ],
)
def test_authentication_failures_are_precise(make: Callable[[], str], reason: str) -> None:
    xml = make()
    with pytest.raises(AuthenticationError, match=reason):
        Authenticator(FakeIdentityStore()).authenticate(_header(xml))


def test_password_text_only_when_configured_and_inactive_partners_never() -> None:
    text = _header(wsse_header("ice", "s3cret-password", digest=False))
    assert (
        Authenticator(FakeIdentityStore(), allow_password_text=True).authenticate(text).partner_id
        == "ice"
    )
    with pytest.raises(AuthenticationError, match="not active"):
        Authenticator(FakeIdentityStore(active=False)).authenticate(
            _header(wsse_header("ice", "s3cret-password"))
        )


def test_replayed_nonce_is_refused_even_with_a_fresh_digest() -> None:
    auth = Authenticator(FakeIdentityStore())
    auth.authenticate(_header(wsse_header("ice", "s3cret-password", nonce=b"same")))
    with pytest.raises(AuthenticationError, match="replayed nonce"):
        auth.authenticate(_header(wsse_header("ice", "s3cret-password", nonce=b"same")))


def test_digest_matches_the_profile_formula() -> None:
    """Base64(SHA-1(nonce + created + password)), the UsernameToken Profile 1.0 definition."""
    created = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    header = wsse_header("ice", "pw", nonce=b"\x01\x02", created=created)
    expected = base64.b64encode(
        hashlib.sha1(b"\x01\x02" + b"2026-11-25T10:00:00Z" + b"pw").digest()
    ).decode()
    assert expected in header


def test_version_and_must_understand_faults_count_as_the_callers() -> None:
    from gembus.errors import MustUnderstandError, VersionMismatchError

    assert VersionMismatchError("x").is_client and MustUnderstandError("x").is_client
    assert not UnavailableError().is_client


def test_a_stale_cached_credential_is_checked_again_against_the_store() -> None:
    """A cached credential read before a change is re-read; an old password then fails."""

    class Rotating(FakeIdentityStore):
        def credential_for(self, username: str, *, fresh: bool = False) -> Credential | None:
            credential = super().credential_for(username, fresh=fresh)
            if credential is not None and not fresh:  # the cache still holds the old version
                return Credential(username, "s3cret-password", True, None, self.version - 1)
            return credential

    store = Rotating()
    store.version, store.password = 5, "rotated-password"
    with pytest.raises(AuthenticationError, match="authentication failed"):
        Authenticator(store).authenticate(_header(wsse_header("ice", "s3cret-password")))
    assert store.fresh_reads == 1


def test_a_new_password_works_although_the_cache_holds_the_old_one() -> None:
    class StaleCache(FakeIdentityStore):
        def credential_for(self, username: str, *, fresh: bool = False) -> Credential | None:
            credential = super().credential_for(username, fresh=fresh)
            if credential is not None and not fresh:
                return Credential(username, "old-password", True, None, self.version)
            return credential

    store = StaleCache()
    store.password = "new-password"
    assert (
        Authenticator(store).authenticate(_header(wsse_header("ice", "new-password"))).partner_id
        == "ice"
    )
    assert store.fresh_reads == 1


def test_a_partner_approved_since_it_was_cached_is_let_in() -> None:
    """The cache may hold a partner as pending; approval must work at the next request."""

    class StaleInactive(FakeIdentityStore):
        def credential_for(self, username: str, *, fresh: bool = False) -> Credential | None:
            credential = super().credential_for(username, fresh=fresh)
            if credential is not None and not fresh:  # cached before the approval
                return Credential(username, credential.password, False, None, self.version)
            return credential

    store = StaleInactive()
    header = _header(wsse_header("ice", "s3cret-password"))
    assert Authenticator(store).authenticate(header).partner_id == "ice"
    assert store.fresh_reads == 1
