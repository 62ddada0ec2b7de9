"""Hand-built SOAP requests for tests that must send what no well-behaved client would."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bus.guard import WSSE_NS
from bus.soap import SOAP11_ENV, SOAP12_ENV
from bus.wsse import PASSWORD_DIGEST, PASSWORD_TEXT, WSU_NS

MARKETPLACE_NS = "urn:gembus:marketplace:v1"
ACTION = f"{MARKETPLACE_NS}/GetPartner"


def wsse_header(
    user: str,
    password: str,
    *,
    nonce: bytes | None = None,
    created: datetime | None = None,
    digest: bool = True,
) -> str:
    """A UsernameToken header block; PasswordDigest unless ``digest`` is False."""
    nonce = nonce if nonce is not None else os.urandom(16)
    stamp = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if digest:
        value = base64.b64encode(hashlib.sha1(nonce + stamp.encode() + password.encode()).digest())
        secret, kind = value.decode(), PASSWORD_DIGEST
    else:
        secret, kind = password, PASSWORD_TEXT
    return (
        f'<wsse:Security xmlns:wsse="{WSSE_NS}" xmlns:wsu="{WSU_NS}"><wsse:UsernameToken>'
        f"<wsse:Username>{user}</wsse:Username>"
        f'<wsse:Password Type="{kind}">{secret}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def envelope(body: str, header: str = "", *, soap12: bool = False) -> bytes:
    ns = SOAP12_ENV if soap12 else SOAP11_ENV
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return f'<s:Envelope xmlns:s="{ns}">{head}<s:Body>{body}</s:Body></s:Envelope>'.encode()


def get_partner(partner_id: str = "ice-charging") -> str:
    return f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}"><m:partnerId>{partner_id}</m:partnerId></m:GetPartner>'


@dataclass
class WsgiResult:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def fault_code(self) -> str | None:
        from lxml import etree

        root = etree.fromstring(self.body)
        code = root.findtext(".//{urn:gembus:common:v1}code")
        return code


def call(
    app: Any,
    body: bytes,
    *,
    path: str = "/services/marketplace",
    action: str | None = ACTION,
    content_type: str = "text/xml; charset=utf-8",
    content_length: bool = True,
    method: str = "POST",
) -> WsgiResult:
    """Call the WSGI app in-process exactly as gunicorn would."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": content_type,
        "HTTP_HOST": "127.0.0.1:8000",
    }
    if content_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    if action is not None:
        environ["HTTP_SOAPACTION"] = f'"{action}"'
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"], captured["headers"] = int(status.split()[0]), dict(headers)

    body_iter = app(environ, start_response)
    try:
        payload = b"".join(body_iter)
    finally:  # as a server does once the reply is written (PEP 3333)
        close = getattr(body_iter, "close", None)
        if close is not None:
            close()
    return WsgiResult(captured["status"], captured["headers"], payload)


def stale(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
