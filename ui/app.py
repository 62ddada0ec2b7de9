"""The Business Services web UI: a Flask app that gembus.web.GembusApp mounts under /ui.

``make_ui`` is called once per process by gembus.bootstrap. The app only renders pages and
translates forms: every rule lives in the domain use cases, run in one unit of work per
request exactly as the SOAP endpoints run them.
"""

from __future__ import annotations

import hashlib
import hmac
from types import TracebackType
from typing import TYPE_CHECKING

import structlog
from flask import Flask, Response, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from gembus.errors import GembusError
from gembus.secrets import resolve_key
from gembus.settings import PROJECT_ROOT
from ui import auth, formatting
from ui.routes import blueprint, navigation

if TYPE_CHECKING:
    from gembus.bootstrap import Gembus

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

#: Forms are small; anything bigger is refused before it is parsed.
MAX_FORM_BYTES = 64 * 1024

#: Sent with every page: no framing, no sniffing, no inline script, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class UiFlask(Flask):
    """Flask whose unhandled errors go to gembus's structured log, like the SOAP side's."""

    def log_exception(self, exc_info: ExcInfo) -> None:
        structlog.get_logger("gembus.ui").error(
            "ui.unhandled", path=request.path, method=request.method, exc_info=exc_info
        )


def make_ui(gembus: Gembus) -> Flask:
    """The WSGI app for every request under /ui (static files under /ui/static)."""
    app = UiFlask(__name__, static_url_path="/ui/static")
    app.config.update(
        SECRET_KEY=session_secret(gembus),
        APPLICATION_ROOT="/ui",
        SESSION_COOKIE_NAME="gembus_ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=auth.SESSION_LIFETIME,
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
    )
    app.session_interface = auth.SchemeAwareSessionInterface()
    app.extensions["gembus"] = gembus
    app.register_blueprint(blueprint())
    app.before_request(auth.check_csrf)
    app.after_request(_secure_headers)
    app.context_processor(navigation)
    formatting.install(app)
    # globals, not context: imported macros (the form helpers) see only globals
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, csrf_field=auth.CSRF_FIELD)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(GembusError, _gembus_error)
    return app


def session_secret(gembus: Gembus) -> bytes:
    """The cookie signing key, derived from the deployment's Fernet key.

    Every gunicorn worker and every node shares that key (README, PostgreSQL section), so a
    session signed by one of them is accepted by all; HMAC keeps the two uses independent.
    """
    key = resolve_key(gembus.settings.secret_key, PROJECT_ROOT / "var" / "secret.key")
    return hmac.new(key.encode(), b"gembus ui session cookie v1", hashlib.sha256).digest()


def _secure_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        # pages show partner data: never keep them in a shared or back-button cache
        response.headers["Cache-Control"] = "no-store"
    return response


def _http_error(error: HTTPException) -> Response:
    """Every HTTP error as a page in the site's layout, keeping headers such as Allow."""
    code = error.code or 500
    response = make_response(render_template("error.html", error=error, code=code), code)
    for name, value in error.get_headers():
        if name.lower() == "allow":
            response.headers["Allow"] = value
    return response


def _gembus_error(error: GembusError) -> Response:
    """A use case failed in a way the page did not handle: a Server fault or a stray Client one."""
    code = 503 if error.fault_code.startswith("Server.Unavailable") else 500
    if error.is_client:
        code = 400
    log = structlog.get_logger("gembus.ui")
    log.warning("ui.fault", code=error.fault_code, reason=error.message, field=error.field)
    page = render_template("error.html", code=code, error=None, fault=error)
    return make_response(page, code)
