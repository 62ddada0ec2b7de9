"""Drives a spyne Application with the tree the guard already parsed.

spyne's WsgiApplication would parse the request again with its own parser (and decode the
bytes with the HTTP charset first, which turns broken UTF-8 into an uncaught 500). Here the
bus hands spyne the one Body child it validated, wrapped in a bare SOAP 1.1 envelope; spyne
binds it to the service method's arguments and serialises the return value, and the bus
writes the response envelope in the caller's SOAP version. Exceptions raised by the service
are kept on the context and re-raised to the bus's single fault boundary instead of being
turned into spyne faults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from spyne import Application, MethodContext
from spyne.protocol.soap import Soap11
from spyne.server import ServerBase

from bus.soap import SOAP11_ENV
from gembus.errors import GembusError, SchemaValidationError

# spyne logs every exception from user code with a traceback; the bus logs each fault once.
for _name in ("spyne", "spyne.application", "spyne.application.server", "spyne.application.client"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)


@dataclass
class CallState:
    """Per-call state spyne carries in ``ctx.udc``: the envelope in, the request context, errors."""

    envelope: etree._Element
    request: Any
    error: BaseException | None = field(default=None)


class PreParsedSoap11(Soap11):
    """Soap11 whose input document is the tree the guard parsed (no second parse)."""

    def create_in_document(self, ctx: MethodContext, charset: str | None = None) -> None:
        ctx.in_document = (ctx.udc.envelope, {})


class _Application(Application):
    def call_wrapper(self, ctx: MethodContext) -> Any:
        try:
            return super().call_wrapper(ctx)
        except BaseException as exc:
            ctx.udc.error = exc
            raise


class SpyneEndpoint:
    """One family's spyne services, callable with a validated Body child."""

    def __init__(self, services: list[type], tns: str, name: str) -> None:
        self.app = _Application(
            services, tns=tns, name=name, in_protocol=PreParsedSoap11(), out_protocol=Soap11()
        )
        self.server = ServerBase(self.app)

    def call(self, body_child: etree._Element, request: Any) -> etree._Element:
        """Run the operation named by ``body_child``; returns the response Body child."""
        envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope")
        etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body").append(body_child)
        ctx = MethodContext(self.server, MethodContext.SERVER)
        ctx.udc = CallState(envelope, request)
        ctx.in_string = [b""]
        contexts = self.server.generate_contexts(ctx)
        ctx = contexts[0]
        if ctx.in_error is not None:
            raise SchemaValidationError(str(ctx.in_error.faultstring))
        self.server.get_in_object(ctx)
        if ctx.in_error is not None:
            raise SchemaValidationError(str(ctx.in_error.faultstring))
        self.server.get_out_object(ctx)
        self._raise_error(ctx)
        self.server.get_out_string(ctx)
        return _body_child(ctx.out_document)

    @staticmethod
    def _raise_error(ctx: MethodContext) -> None:
        error = ctx.udc.error
        if error is not None:
            raise error
        if ctx.out_error is not None:
            raise GembusError(f"spyne: {ctx.out_error.faultstring}")


def _body_child(out_document: etree._Element) -> etree._Element:
    body = out_document.find(f"{{{SOAP11_ENV}}}Body")
    assert body is not None and len(body), "spyne produced no response body"
    return body[0]
