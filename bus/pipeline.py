"""The mediator pipeline: every step is ``step(msg, ctx) -> msg`` and the order is one list.

    guard -> identify -> validate -> dispatch -> validate_response

Any exception leaves through :func:`fault_for`, the one fault boundary: gembus errors keep
their code, anything else becomes a generic ``Server`` fault whose traceback is logged, never
sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from bus.contracts import Contract
from bus.guard import WSSE_NS, GuardedRequest, Limits, check_request
from bus.soap import Fault, SoapVersion
from bus.wsse import Authenticator, Consumed, Credential, Verified
from domain.partners import Partner
from gembus.context import RequestContext
from gembus.errors import (
    AuthenticationError,
    GembusError,
    NotImplementedFault,
    SchemaValidationError,
    ServerError,
)

Handler = Callable[[etree._Element, RequestContext], etree._Element]


@dataclass
class Message:
    """A SOAP message moving through the pipeline; steps fill in what they learn."""

    raw: bytes
    content_type: str | None
    soap_action: str | None
    contract: Contract
    guarded: GuardedRequest | None = None
    response: etree._Element | None = None

    @property
    def version(self) -> SoapVersion:
        if self.guarded is not None:
            return self.guarded.version
        media = (self.content_type or "").lower()
        return SoapVersion.SOAP12 if "application/soap+xml" in media else SoapVersion.SOAP11


Step = Callable[[Message, RequestContext], Message]


@dataclass
class Pipeline:
    """The bus's steps for gembus's own services, in their one declared order."""

    limits: Limits
    authenticator: Authenticator
    handlers: dict[str, dict[str, Handler]]
    validate_requests: bool = True
    validate_responses: bool = True
    #: (family, operation) pairs callable without a UsernameToken; everything else needs one.
    anonymous_operations: frozenset[tuple[str, str]] = frozenset()
    #: (family, operation) pairs whose handler records the caller's nonce in its own database
    #: statement (one round trip instead of two on a hot path; see gembus.context.DeferredNonce).
    deferred_nonce_operations: frozenset[tuple[str, str]] = frozenset()
    steps: list[Step] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = [
            self.guard,
            self.identify,
            self.validate,
            self.dispatch,
            self.validate_response,
        ]

    def run(self, msg: Message, ctx: RequestContext) -> Message:
        for step in self.steps:
            msg = step(msg, ctx)
        return msg

    def guard(self, msg: Message, ctx: RequestContext) -> Message:
        msg.guarded = check_request(
            msg.raw, msg.content_type, msg.soap_action, msg.contract, self.limits
        )
        ctx.operation = msg.guarded.operation.name
        ctx.log = ctx.log.bind(operation=ctx.operation)
        return msg

    def identify(self, msg: Message, ctx: RequestContext) -> Message:
        if self.is_anonymous(msg):
            ctx.log = ctx.log.bind(partner="anonymous")
            return msg  # ctx.partner stays None: the handler applies the anonymous rules
        if (msg.contract.family, _guarded(msg).operation.name) in self.deferred_nonce_operations:
            verified = self.authenticator.verify(_guarded(msg).header)
            self.adopt(verified.credential, ctx)
            ctx.deferred_nonce = PendingNonce(self.authenticator, verified)
            return msg
        self.adopt(self.authenticator.authenticate(_guarded(msg).header), ctx)
        return msg

    def is_anonymous(self, msg: Message) -> bool:
        """An operation callable without a UsernameToken, called without one."""
        guarded = _guarded(msg)
        key = (msg.contract.family, guarded.operation.name)
        return key in self.anonymous_operations and not _has_security(guarded.header)

    @staticmethod
    def adopt(credential: Credential, ctx: RequestContext) -> None:
        """The authenticated partner becomes the request's caller."""
        partner = credential.principal
        if not isinstance(partner, Partner):
            with ctx.uow() as uow:
                partner = uow.partners.get(credential.partner_id)
        if partner is None or not partner.is_active:
            raise AuthenticationError("the partner is not active")
        ctx.partner = partner
        ctx.log = ctx.log.bind(partner=credential.partner_id)

    def validate(self, msg: Message, ctx: RequestContext) -> Message:
        assert msg.guarded is not None
        if self.validate_requests:
            _validate(msg.contract.schema, msg.guarded.body_child, SchemaValidationError)
        return msg

    def dispatch(self, msg: Message, ctx: RequestContext) -> Message:
        assert msg.guarded is not None
        operation = msg.guarded.operation.name
        handler = self.handlers.get(msg.contract.family, {}).get(operation)
        if handler is None:
            raise NotImplementedFault(
                f"{msg.contract.family}.{operation} is declared by the contract and will be "
                "implemented in a later release"
            )
        try:
            msg.response = handler(msg.guarded.body_child, ctx)
        except Exception:
            _settle_pending(ctx)  # a replayed message answers Client.Authentication
            raise
        _settle_pending(ctx)
        return msg

    def validate_response(self, msg: Message, ctx: RequestContext) -> Message:
        assert msg.response is not None
        if self.validate_responses:
            _validate(msg.contract.schema, msg.response, InvalidResponseError)
        return msg


@dataclass
class PendingNonce:
    """Implements gembus.context.DeferredNonce: a verified token whose nonce the handler
    records; if the handler never did (it failed first), the pipeline records it itself."""

    authenticator: Authenticator
    verified: Verified
    settled: bool = False

    @property
    def claim(self) -> tuple[str, str, datetime] | None:
        """What the handler's statement must record; None once recorded."""
        claim = self.verified.claim
        if claim is None or self.settled:
            return None
        return (claim.username, claim.nonce, claim.expires_at)

    def settle(self, fresh: bool, partners_version: int) -> None:
        self.settled = True
        current = partners_version == self.verified.credential.version
        self.authenticator.settle(self.verified, Consumed(fresh, current))

    def consume(self) -> None:
        """Record the nonce the ordinary way (its own statement); once."""
        if self.settled:
            return
        self.settled = True
        claim = self.verified.claim
        if claim is None:
            return
        consumed = self.authenticator.store.consume(
            claim.username, claim.nonce, claim.expires_at, self.verified.credential.version
        )
        self.authenticator.settle(self.verified, consumed)


def _settle_pending(ctx: RequestContext) -> None:
    pending = ctx.deferred_nonce
    if isinstance(pending, PendingNonce) and not pending.settled:
        pending.consume()


def _has_security(header: etree._Element | None) -> bool:
    return header is not None and header.find(f"{{{WSSE_NS}}}Security") is not None


class InvalidResponseError(ServerError):
    """gembus produced a response its own contract rejects: a bug, never the caller's fault."""

    fault_code = "Server.InvalidResponse"


def _validate(schema: etree.XMLSchema, element: etree._Element, error: type[GembusError]) -> None:
    if schema.validate(element):
        return
    last = schema.error_log.last_error  # type: ignore[attr-defined]
    field_path = _field_path(element, last.path) if last is not None else None
    raise error(f"line {last.line}: {last.message}" if last else "invalid", field=field_path)


def _field_path(root: etree._Element, xpath: str | None) -> str | None:
    """Turn libxml2's /*[local-name()=...] paths into readable field paths."""
    if not xpath:
        return None
    try:
        nodes = root.xpath(xpath)
    except etree.XPathError:
        return xpath
    if not isinstance(nodes, list) or not nodes or not isinstance(nodes[0], etree._Element):
        return xpath
    names = []
    node: etree._Element | None = nodes[0]
    while node is not None and node is not root:
        names.append(etree.QName(node).localname)
        node = node.getparent()
    return "/".join(reversed(names)) or etree.QName(root).localname


def fault_for(exc: BaseException, message_id: str) -> tuple[Fault, bool]:
    """The one fault boundary: (fault to send, whether it was unexpected)."""
    if isinstance(exc, GembusError):
        return Fault.from_error(exc, message_id), False
    return Fault(
        "Server", "internal error; quote the message id to support", None, message_id
    ), True


def _guarded(msg: Message) -> GuardedRequest:
    assert msg.guarded is not None, "the guard step runs first"
    return msg.guarded
