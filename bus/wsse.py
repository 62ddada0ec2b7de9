"""WS-Security UsernameToken authentication (SECURITY.md §4).

spyne has no WS-Security, so the bus checks the token itself before dispatch:
exactly one Security/UsernameToken; PasswordDigest = Base64(SHA1(nonce + created + password))
compared in constant time; Created within the window; (user, nonce) never seen before in a
store shared by every worker and node (the database), kept for twice the window. PasswordText
is accepted only when the deployment says TLS protects it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from lxml import etree

from bus.guard import WSSE_NS
from gembus.errors import AuthenticationError

WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_OASIS = "http://docs.oasis-open.org/wss/2004/01/"
_TOKEN_PROFILE = _OASIS + "oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = f"{_TOKEN_PROFILE}#PasswordDigest"
PASSWORD_TEXT = f"{_TOKEN_PROFILE}#PasswordText"


@dataclass(frozen=True)
class Credential:
    """What the credential store knows about a UsernameToken user."""

    partner_id: str
    password: str  # clear text, decrypted from the store: PasswordDigest needs it
    active: bool
    principal: Any = None  # what the store loaded with it (the domain Partner), to avoid a reload
    version: int = 0  # the store's change version when it was read


@dataclass(frozen=True)
class Consumed:
    """What recording a nonce learnt: whether it was new, and whether the credential is current."""

    fresh: bool
    current: bool


class IdentityStore(Protocol):
    """Credentials and the replay store, shared by every worker and node.

    ``credential_for`` may answer from a per-process cache; ``consume`` records the nonce and,
    in the same round trip, says whether a credential read at ``version`` is still current, so
    a warm request costs one database statement and a stale cache is never trusted.
    """

    def credential_for(self, username: str, *, fresh: bool = False) -> Credential | None: ...

    def consume(
        self, username: str, nonce: str, expires_at: datetime, version: int
    ) -> Consumed: ...


@dataclass(frozen=True)
class UsernameToken:
    username: str
    password: str
    password_type: str
    nonce: bytes | None
    nonce_text: str | None
    created: str | None


def extract_token(header: etree._Element | None) -> UsernameToken:
    """Find the single UsernameToken; anything else is an authentication fault."""
    if header is None:
        raise AuthenticationError("a WS-Security UsernameToken header is required")
    securities = header.findall(f"{{{WSSE_NS}}}Security")
    if len(securities) != 1:
        raise AuthenticationError("exactly one wsse:Security header is required")
    tokens = securities[0].findall(f"{{{WSSE_NS}}}UsernameToken")
    if len(tokens) != 1:
        raise AuthenticationError("exactly one wsse:UsernameToken is required")
    return _read_token(tokens[0])


def _read_token(token: etree._Element) -> UsernameToken:
    password = token.find(f"{{{WSSE_NS}}}Password")
    username = (token.findtext(f"{{{WSSE_NS}}}Username") or "").strip()
    if not username or password is None:
        raise AuthenticationError("the UsernameToken needs a Username and a Password")
    nonce_text = token.findtext(f"{{{WSSE_NS}}}Nonce")
    created = token.findtext(f"{{{WSU_NS}}}Created") or token.findtext(f"{{{WSSE_NS}}}Created")
    nonce = None
    if nonce_text is not None:
        try:
            nonce = base64.b64decode(nonce_text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AuthenticationError("the Nonce is not Base64") from exc
    return UsernameToken(
        username=username,
        password=password.text or "",
        password_type=password.get("Type", PASSWORD_TEXT),
        nonce=nonce,
        nonce_text=nonce_text.strip() if nonce_text else None,
        created=created.strip() if created else None,
    )


@dataclass(frozen=True)
class NonceClaim:
    """A nonce to record: the replay store must not have seen (username, nonce) before."""

    username: str
    nonce: str
    expires_at: datetime


@dataclass(frozen=True)
class Verified:
    """A token whose password checked out against the (possibly cached) credential.

    ``claim`` is the nonce still to be recorded (None for PasswordText); until it is recorded
    and :meth:`Authenticator.settle` has seen the answer, the caller is not authenticated.
    """

    token: UsernameToken
    credential: Credential
    claim: NonceClaim | None


@dataclass
class Authenticator:
    """Checks a UsernameToken against the credential and nonce stores.

    ``authenticate`` = ``verify`` (no database on a warm cache) + recording the nonce +
    ``settle``. The gateway runs the three apart so that recording the nonce shares one
    statement with its transaction log (persistence/transaction_log.py).
    """

    store: IdentityStore
    window_s: int = 300
    allow_password_text: bool = False
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def authenticate(self, header: etree._Element | None) -> Credential:
        """Return the authenticated partner's credential or raise AuthenticationError."""
        verified = self.verify(header)
        claim = verified.claim
        if claim is None:
            return verified.credential
        consumed = self.store.consume(
            claim.username, claim.nonce, claim.expires_at, verified.credential.version
        )
        return self.settle(verified, consumed)

    def verify(self, header: etree._Element | None) -> Verified:
        """The token's password against the credential; the nonce is not recorded yet."""
        token = extract_token(header)
        credential: Credential | None
        claim: NonceClaim | None = None
        if token.password_type == PASSWORD_DIGEST:
            credential, claim = self._check_digest(token)
        elif token.password_type == PASSWORD_TEXT and self.allow_password_text:
            credential = self.store.credential_for(token.username, fresh=True)
            self._check_text(token, credential)
        else:
            raise AuthenticationError("only PasswordDigest UsernameTokens are accepted here")
        assert credential is not None
        if not credential.active and claim is not None:
            # The cache may predate an approval: decide on a fresh read, never the cache.
            credential = self.store.credential_for(token.username, fresh=True)
            _verify_digest(token, credential)
            assert credential is not None
        if not credential.active:
            raise AuthenticationError("the partner is not active")
        return Verified(token, credential, claim)

    def settle(self, verified: Verified, consumed: Consumed) -> Credential:
        """After the nonce was recorded: refuse a replay; re-check a credential that changed."""
        if not consumed.fresh:
            raise AuthenticationError("replayed nonce")
        if consumed.current:
            return verified.credential
        # the partner changed since it was cached: check again, on a fresh read
        credential = self.store.credential_for(verified.token.username, fresh=True)
        _verify_digest(verified.token, credential)
        assert credential is not None
        if not credential.active:
            raise AuthenticationError("the partner is not active")
        return credential

    def _check_digest(self, token: UsernameToken) -> tuple[Credential, NonceClaim]:
        if token.nonce is None or token.created is None or token.nonce_text is None:
            raise AuthenticationError("PasswordDigest needs a Nonce and a Created timestamp")
        created_at = self._check_created(token.created)
        credential = self.store.credential_for(token.username)
        try:
            _verify_digest(token, credential)
        except AuthenticationError:
            # The cache may predate a password rotation: decide on a fresh read, never the cache.
            credential = self.store.credential_for(token.username, fresh=True)
            _verify_digest(token, credential)
        assert credential is not None
        expires = created_at + timedelta(seconds=2 * self.window_s)
        return credential, NonceClaim(token.username, token.nonce_text, expires)

    @staticmethod
    def _check_text(token: UsernameToken, credential: Credential | None) -> None:
        secret = credential.password if credential else ""
        if credential is None or not hmac.compare_digest(secret, token.password):
            raise AuthenticationError("authentication failed")

    def _check_created(self, created: str) -> datetime:
        try:
            created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AuthenticationError("Created is not an xs:dateTime") from exc
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        if abs((self.now() - created_at).total_seconds()) > self.window_s:
            raise AuthenticationError(f"stale Created: more than {self.window_s} s from now")
        return created_at


def _verify_digest(token: UsernameToken, credential: Credential | None) -> None:
    """Base64(SHA-1(nonce + created + password)) in constant time; unknown users fail alike."""
    assert token.nonce is not None and token.created is not None
    secret = credential.password if credential else ""
    expected = base64.b64encode(
        hashlib.sha1(token.nonce + token.created.encode() + secret.encode()).digest()  # noqa: S324 - prescribed by the UsernameToken profile
    ).decode()
    if credential is None or not hmac.compare_digest(expected, token.password.strip()):
        raise AuthenticationError("authentication failed")
