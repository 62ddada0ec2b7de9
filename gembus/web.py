"""The WSGI application: service index, health, metrics, contracts and the SOAP endpoints.

Routes::

    GET  /                      service index (HTML; ?format=json for tools)
    GET  /health                database check (200 / 503, JSON)
    GET  /metrics               Prometheus text
    GET  /services/<family>?wsdl the canonical WSDL with this server's address
    POST /services/<family>     SOAP 1.1 (text/xml) or SOAP 1.2 (application/soap+xml)
    GET  /wsdl/<family>.wsdl    the same WSDL, for families partners implement too
    GET  /xsd/<path>.xsd        the canonical schemas the WSDLs import
"""

from __future__ import annotations

import html
import json
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import structlog
from sqlalchemy import Engine, text

from bus.contracts import XSD_DIR, Contract, served_wsdl
from bus.gateway import Gateway, GatewayMessage
from bus.guard import check_length
from bus.metering import UsageMeter
from bus.pipeline import Message, Pipeline, fault_for
from bus.soap import Fault, build_envelope, build_fault, fault_http_status
from domain.gateway_calls import GatewayCall
from gembus import metrics
from gembus.context import RequestContext, new_message_id
from gembus.errors import GembusError
from gembus.settings import Settings

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
Response = tuple[str, list[tuple[str, str]], bytes]

#: The environ key of work that runs once the reply is written (see _ThenRun).
_AFTER = "gembus.after_reply"

_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Payload Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


@dataclass
class GembusApp:
    """WSGI callable; built by gembus.bootstrap with everything it needs."""

    settings: Settings
    contracts: dict[str, Contract]
    pipeline: Pipeline
    engine: Engine
    context_factory: Callable[[str, str], RequestContext]
    #: The Business Services web UI, mounted under /ui (set by gembus.bootstrap).
    ui: Callable[[Environ, StartResponse], Iterable[bytes]] | None = None
    #: Counts calls made under service contracts (set by gembus.bootstrap).
    meter: UsageMeter | None = None
    #: The Dynamic Service Gateway and its transaction log (set by gembus.bootstrap).
    gateway: Gateway | None = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if self.ui is not None and (path == "/ui" or path.startswith("/ui/")):
            return self.ui(environ, start_response)
        try:
            status, headers, body = self.route(environ)
        except Exception:  # the last line of defence: never gunicorn's HTML 500
            structlog.get_logger("gembus").error("http.unhandled", error=traceback.format_exc())
            status, headers, body = (
                _STATUS[500],
                [("Content-Type", "text/plain")],
                b"internal error\n",
            )
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        after = environ.get(_AFTER)
        return [body] if after is None else _ThenRun(body, after)

    def route(self, environ: Environ) -> Response:
        path = environ.get("PATH_INFO", "/") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/services/"):
            return self.service(environ, path.removeprefix("/services/").strip("/"), method)
        if path.startswith("/gateway/") and self.gateway is not None:
            return self.gateway_endpoint(environ, path.removeprefix("/gateway/").strip("/"), method)
        if method not in ("GET", "HEAD"):
            return _plain(405, "use GET\n")
        return self.get(environ, path)

    def get(self, environ: Environ, path: str) -> Response:
        if path == "/":
            return self.index(environ)
        if path == "/health":
            return self.health()
        if path == "/metrics":
            body, content_type = metrics.render()
            return _STATUS[200], [("Content-Type", content_type)], body
        if path.startswith("/wsdl/") and path.endswith(".wsdl"):
            contract = self.contracts.get(path.removeprefix("/wsdl/").removesuffix(".wsdl"))
            if contract is not None:
                return _xml(200, self.wsdl_for(environ, contract))
        if path.startswith("/xsd/") and path.endswith(".xsd"):
            return self.xsd(path.removeprefix("/xsd/"))
        return _plain(404, "not found\n")

    def base_url(self, environ: Environ) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        scheme = environ.get("wsgi.url_scheme", "http")
        host = (
            environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        )
        return f"{scheme}://{host}"

    def wsdl_for(self, environ: Environ, contract: Contract) -> bytes:
        return served_wsdl(contract, self.base_url(environ) + contract.endpoint_path)

    def xsd(self, relative: str) -> Response:
        candidate = (XSD_DIR / relative).resolve()
        if not candidate.is_relative_to(XSD_DIR.resolve()) or not candidate.is_file():
            return _plain(404, "not found\n")
        return _xml(200, candidate.read_bytes())

    def index_entries(self, environ: Environ) -> list[dict[str, Any]]:
        base = self.base_url(environ)
        entries = []
        for contract in self.contracts.values():
            served = contract.served_by_gembus
            entries.append(
                {
                    "name": contract.family,
                    "namespace": contract.target_namespace,
                    "wsdl": f"{base}{contract.endpoint_path}?wsdl"
                    if served
                    else f"{base}/wsdl/{contract.family}.wsdl",
                    "endpoint": f"{base}{contract.endpoint_path}" if served else None,
                    "implementedBy": "gembus" if served else "partners",
                    "operations": [op.name for op in contract.operations.values()],
                }
            )
        return entries

    def index(self, environ: Environ) -> Response:
        entries = self.index_entries(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        wants_json = query.get("format") == ["json"] or "application/json" in environ.get(
            "HTTP_ACCEPT", ""
        )
        if wants_json:
            body = json.dumps(entries, indent=2).encode()
            return _STATUS[200], [("Content-Type", "application/json")], body
        return _STATUS[200], [("Content-Type", "text/html; charset=utf-8")], _index_html(entries)

    def health(self) -> Response:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            status, database = 200, "ok"
        except Exception as exc:  # any database failure means unhealthy, with the reason
            status, database = 503, f"unavailable: {type(exc).__name__}"
        body = json.dumps({"status": "ok" if status == 200 else "degraded", "database": database})
        return _STATUS[status], [("Content-Type", "application/json")], body.encode()

    def service(self, environ: Environ, family: str, method: str) -> Response:
        contract = self.contracts.get(family)
        if contract is None or not contract.served_by_gembus:
            return _plain(404, f"no gembus endpoint for {family!r}; see / for the index\n")
        if method in ("GET", "HEAD"):
            if "wsdl" in environ.get("QUERY_STRING", "").lower():
                return _xml(200, self.wsdl_for(environ, contract))
            return _plain(200, f"{family}: POST SOAP here; the contract is at ?wsdl\n")
        if method != "POST":
            return _plain(405, "SOAP requests use POST\n")
        return self.soap(environ, contract)

    def soap(self, environ: Environ, contract: Contract) -> Response:
        started = time.perf_counter()
        message_id = new_message_id()
        ctx = self.context_factory(message_id, contract.family)
        msg = Message(b"", environ.get("CONTENT_TYPE"), environ.get("HTTP_SOAPACTION"), contract)
        fault: Fault | None = None
        try:
            msg.raw = self.read_body(environ)
            msg = self.pipeline.run(msg, ctx)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            fault = self.log_fault(ctx, exc)
        elapsed = time.perf_counter() - started
        if self.meter is not None and ctx.operation is not None:
            self.meter_call(ctx, fault, elapsed)
        metrics.observe(
            contract.family, ctx.operation or "unknown", fault.code if fault else None, elapsed
        )
        ctx.log.info(
            "soap.request",
            outcome=fault.code if fault else "ok",
            ms=round(elapsed * 1000, 2),
            bytes_in=len(msg.raw),
        )
        return self.soap_response(msg, fault, message_id)

    def gateway_endpoint(self, environ: Environ, target: str, method: str) -> Response:
        """``/gateway/<serviceId>`` reaches one service; ``/gateway/<family>`` routes by content."""
        assert self.gateway is not None
        try:
            contract = self.gateway.contract_for(target)
        except GembusError as exc:
            return _plain(404, f"{exc.message}; see /gateway/ routes in the catalogue\n")
        if method in ("GET", "HEAD"):
            if "wsdl" in environ.get("QUERY_STRING", "").lower():
                url = f"{self.base_url(environ)}/gateway/{target}"
                return _xml(200, served_wsdl(contract, url))
            return _plain(200, f"gateway to {target}: POST SOAP here; the contract is at ?wsdl\n")
        if method != "POST":
            return _plain(405, "SOAP requests use POST\n")
        return self.routed(environ, contract, target)

    def routed(self, environ: Environ, contract: Contract, target: str) -> Response:
        assert self.gateway is not None
        started = time.perf_counter()
        message_id = new_message_id()
        ctx = self.context_factory(message_id, contract.family)
        ctx.log = ctx.log.bind(gateway=target)
        msg = GatewayMessage(
            b"",
            environ.get("CONTENT_TYPE"),
            environ.get("HTTP_SOAPACTION"),
            contract,
            target=target,
        )
        fault: Fault | None = None
        try:
            msg.raw = self.read_body(environ)
            msg = self.gateway.run(msg, ctx)
        except Exception as exc:
            fault = self.log_fault(ctx, exc)
        if msg.reply is not None and fault is None:
            status, content_type, body = msg.reply
            response: Response = (
                _status(status),
                [("Content-Type", content_type), ("X-Gembus-Message-Id", message_id)],
                body,
            )
        else:
            response = self.soap_response(msg, fault, message_id)
        elapsed = time.perf_counter() - started
        if msg.ticket is None:  # never started: the whole record is written before the reply
            self.log_call(msg, ctx, fault, elapsed, response)
        else:  # its rows exist already; the rest waits until the reply has been sent
            environ[_AFTER] = lambda: self.log_call(msg, ctx, fault, elapsed, response)
        return response

    def log_call(
        self,
        msg: GatewayMessage,
        ctx: RequestContext,
        fault: Fault | None,
        elapsed: float,
        response: Response,
    ) -> None:
        """Transaction log, metrics and one log line for every routed call."""
        route = msg.route
        provider_fault = msg.reply is not None and msg.reply[0] >= 400
        code = fault.code if fault else ("Provider.Fault" if provider_fault else None)
        metrics.observe(f"gateway/{msg.contract.family}", ctx.operation or "unknown", code, elapsed)
        ctx.log.info(
            "gateway.call",
            outcome=code or "ok",
            ms=round(elapsed * 1000, 2),
            bytes_in=len(msg.raw),
            bytes_out=len(response[2]),
        )
        log = self.gateway.log if self.gateway is not None else None
        if log is None:
            return
        if msg.ticket is not None:  # started: its rows exist, complete them
            log.finish(
                msg.ticket, "fault" if code else "ok", code, elapsed * 1000, len(response[2])
            )
            return
        log.record(
            GatewayCall(
                datetime.now(UTC),
                ctx.message_id,
                ctx.partner.partner_id if ctx.partner else None,
                route.provider_id if route else None,
                route.service_id if route else None,
                msg.contract.family,
                ctx.operation,
                msg.contract_id,
                "fault" if code else "ok",
                code,
                elapsed * 1000,
                len(msg.raw),
                len(response[2]),
                msg.over_quota,
            )
        )

    def meter_call(self, ctx: RequestContext, fault: Fault | None, elapsed: float) -> None:
        """Count the call under its contract; metering must never turn a reply into a fault."""
        assert self.meter is not None and ctx.operation is not None
        partner_id = ctx.partner.partner_id if ctx.partner else None
        try:
            self.meter.record(
                partner_id, ctx.family, ctx.operation, fault.code if fault else None, elapsed * 1000
            )
        except Exception:  # logged with its traceback; the partner still gets its answer
            ctx.log.error("usage.meter_failed", error=traceback.format_exc())

    def read_body(self, environ: Environ) -> bytes:
        limits = self.pipeline.limits
        length = check_length(environ.get("CONTENT_LENGTH"), limits)
        stream = environ["wsgi.input"]
        data: bytes = (
            stream.read(length) if length is not None else stream.read(limits.max_body_bytes + 1)
        )
        return data

    def log_fault(self, ctx: RequestContext, exc: Exception) -> Fault:
        fault, unexpected = fault_for(exc, ctx.message_id)
        if unexpected:
            ctx.log.error("soap.unexpected", error=traceback.format_exc())
        elif isinstance(exc, GembusError) and not exc.is_client:
            ctx.log.warning("soap.server_fault", code=fault.code, reason=fault.message)
        else:
            ctx.log.info(
                "soap.client_fault", code=fault.code, reason=fault.message, field=fault.field
            )
        return fault

    def soap_response(self, msg: Message, fault: Fault | None, message_id: str) -> Response:
        version = msg.version
        headers = [("Content-Type", version.content_type), ("X-Gembus-Message-Id", message_id)]
        if fault is not None:
            return _STATUS[fault_http_status(version, fault)], headers, build_fault(version, fault)
        assert msg.response is not None
        return _STATUS[200], headers, build_envelope(version, msg.response)


def _status(code: int) -> str:
    return _STATUS.get(code) or f"{code} {HTTPStatus(code).phrase}"


def _plain(code: int, text_body: str) -> Response:
    return _STATUS[code], [("Content-Type", "text/plain; charset=utf-8")], text_body.encode()


def _xml(code: int, body: bytes) -> Response:
    return _STATUS[code], [("Content-Type", "text/xml; charset=utf-8")], body


def _index_html(entries: list[dict[str, Any]]) -> bytes:
    rows = "".join(
        "<tr><td><strong>{name}</strong><br><code>{ns}</code></td><td>{endpoint}</td>"
        '<td><a href="{wsdl}">WSDL</a></td><td>{ops}</td></tr>'.format(
            name=html.escape(e["name"]),
            ns=html.escape(e["namespace"]),
            endpoint=f"<code>{html.escape(e['endpoint'])}</code>"
            if e["endpoint"]
            else "<em>implemented by partners; gembus calls it</em>",
            wsdl=html.escape(e["wsdl"]),
            ops=html.escape(", ".join(e["operations"])),
        )
        for e in entries
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gembus service index</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#1d2a33}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #d5dde3;padding:.5rem;
text-align:left;vertical-align:top}}th{{background:#eef3f6}}code{{font-size:.85em}}</style></head>
<body><h1>gembus service index</h1>
<p>Every service family gembus publishes. Families marked <em>implemented by partners</em> are
contracts your own systems implement; gembus calls them. Machine-readable:
<a href="/?format=json">/?format=json</a>. Health: <a href="/health">/health</a>.
Metrics: <a href="/metrics">/metrics</a>.</p>
<table><tr><th>Family</th><th>Endpoint</th><th>Contract</th><th>Operations</th></tr>{rows}</table>
</body></html>"""
    return page.encode()


class _ThenRun:
    """A one-chunk WSGI body whose ``close`` runs ``after``: the server calls it once the
    reply is written (PEP 3333), so bookkeeping that need not delay the caller (a routed
    call's outcome, metrics and log line) leaves the latency path."""

    __slots__ = ("after", "body")

    def __init__(self, body: bytes, after: Callable[[], None]) -> None:
        self.body = body
        self.after = after

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        try:
            self.after()
        except Exception:  # the reply is gone already; the traceback goes to the log
            structlog.get_logger("gembus").error("http.after_reply", error=traceback.format_exc())
