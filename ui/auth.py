"""Who is signed in: password check, the signed session cookie, CSRF tokens, view guards.

The session is a cookie signed by Flask (itsdangerous) holding the partner ID, the sign-in
time and the CSRF token; nothing secret is in it. Each request re-reads the partner in its
unit of work, so a deactivation or a password change elsewhere ends the session at once.
"""

from __future__ import annotations

import enum
import functools
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Concatenate, ParamSpec, cast
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue

from domain.partners import Partner, PartnerStatus, Role
from persistence.unit_of_work import SqlUnitOfWork

if TYPE_CHECKING:
    from gembus.bootstrap import Gembus

#: Absolute lifetime of a sign-in: the cookie's Max-Age and the check on every request.
SESSION_LIFETIME = timedelta(hours=8)
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PARTNER, _SIGNED_IN_AT, _CSRF = "partner_id", "signed_in_at", "csrf"

P = ParamSpec("P")
#: A view that runs for a signed-in partner, inside the request's unit of work.
PartnerView = Callable[Concatenate[SqlUnitOfWork, Partner, P], ResponseReturnValue]


class SchemeAwareSessionInterface(SecureCookieSessionInterface):
    """Marks the cookie Secure whenever the request came over https (also behind a proxy
    that gunicorn trusts for X-Forwarded-Proto), without breaking plain-http development."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


class LoginOutcome(enum.Enum):
    SIGNED_IN = "signed-in"
    PENDING = "pending"
    REFUSED = "refused"


def gembus() -> Gembus:
    """The process's composition root, handed to the app by make_ui."""
    return cast("Gembus", current_app.extensions["gembus"])


def check_password(uow: SqlUnitOfWork, partner_id: str, password: str) -> LoginOutcome:
    """Verify the argon2 hash; unknown partners cost one hash too, so timing reveals nothing.

    Only a caller who knows the password learns that the partner is pending; every other
    failure is the same REFUSED.
    """
    vault = gembus().vault
    found = uow.partners.sealed_credential(partner_id) if partner_id else None
    if found is None:
        vault.verify(_dummy_hash(), password)
        return LoginOutcome.REFUSED
    password_hash, _sealed, status = found
    if not vault.verify(password_hash, password):
        return LoginOutcome.REFUSED
    if status is PartnerStatus.PENDING:
        return LoginOutcome.PENDING
    return LoginOutcome.SIGNED_IN if status is PartnerStatus.ACTIVE else LoginOutcome.REFUSED


@functools.cache
def _dummy_hash() -> str:
    return gembus().vault.hash(secrets.token_urlsafe(16))


def sign_in(partner_id: str) -> None:
    """A fresh session (new CSRF token) so nothing from before the sign-in survives it."""
    session.clear()
    session.permanent = True
    session[_PARTNER] = partner_id
    session[_SIGNED_IN_AT] = time.time()
    session[_CSRF] = secrets.token_urlsafe(32)


def sign_out() -> None:
    session.clear()


def renew_sign_in() -> None:
    """After this session changed the password itself, it stays valid (others end)."""
    session[_SIGNED_IN_AT] = time.time()


def signed_in_partner(uow: SqlUnitOfWork) -> Partner | None:
    """The session's partner if it is still active and the session is still valid."""
    partner_id, signed_in_at = session.get(_PARTNER), session.get(_SIGNED_IN_AT)
    if not isinstance(partner_id, str) or not isinstance(signed_in_at, int | float):
        return None
    partner = uow.partners.get(partner_id)
    if (
        partner is None
        or not partner.is_active
        or time.time() - signed_in_at > SESSION_LIFETIME.total_seconds()
        or _rotated_since(partner, signed_in_at)
    ):
        sign_out()
        flash("Your session has ended. Please sign in again.", "info")
        return None
    return partner


def _rotated_since(partner: Partner, signed_in_at: float) -> bool:
    rotated = partner.credentials_rotated_at
    if rotated is None:
        return False
    if rotated.tzinfo is None:
        rotated = rotated.replace(tzinfo=UTC)
    return rotated > datetime.fromtimestamp(signed_in_at, UTC)


def signed_in(view: PartnerView[P]) -> Callable[P, ResponseReturnValue]:
    """Run the view in the request's unit of work with the signed-in partner, or redirect
    to the sign-in page (which comes back here afterwards)."""

    @functools.wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        with gembus().uow() as uow:
            partner = signed_in_partner(uow)
            if partner is None:
                return redirect(url_for("ui.login", next=request.path))
            g.partner = partner
            return view(uow, partner, *args, **kwargs)

    return guarded


def operator_only(view: PartnerView[P]) -> PartnerView[P]:
    """403 for every partner that is not the marketplace operator."""

    def guarded(
        uow: SqlUnitOfWork, partner: Partner, /, *args: P.args, **kwargs: P.kwargs
    ) -> ResponseReturnValue:
        if not partner.has_role(Role.MARKETPLACE_OPERATOR):
            abort(403, description="This page is for the marketplace operator only.")
        return view(uow, partner, *args, **kwargs)

    functools.update_wrapper(guarded, view)
    return guarded


def csrf_token() -> str:
    """The session's CSRF token, created on first use (also for anonymous forms)."""
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF] = token
    return token


def check_csrf() -> None:
    """Refuse every state-changing request whose form does not carry the session's token.

    SameSite=Lax already keeps the cookie off cross-site POSTs; the token also covers
    same-site attackers and browsers without SameSite.
    """
    if request.method in SAFE_METHODS:
        return
    expected = session.get(_CSRF)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(
            400,
            description="The form was not sent from this site or has expired. "
            "Please reload the page and try again.",
        )


def safe_next(target: str | None) -> str | None:
    """Only a local path under /ui may be a redirect target (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui") or target.startswith("//"):
        return None
    return target
