"""gembus's own services asking a partner's published service, through the gateway in process.

``/services/reservation`` answers EVSPs itself, but a reservation is made by the CLM of the
EVSE's operator. The endpoint hands the request it received (the envelope the guard parsed,
unchanged, the caller's SOAP Header included) to :class:`GatewayRelay`, which runs the
gateway's own steps on it, as for a request sent to ``/gateway/<family>``:

    route (by content) -> check contract (SRV 1967) -> limit -> transform request
        -> start (transaction log) -> dispatch (timeout, circuit breaker) -> validate reply
        -> transform reply

What the pipeline already did is not done twice: the guard, the caller's WS-Security identity
and nonce (recorded by the pipeline, so ``start`` logs the call without one), request
validation. Routing is by content only (the EVSE ID's operator prefix): a ``gw:targetPartner``
header is ignored, since gembus has checked the EVSE it routes by. The call is recorded by the
web layer's own recorder (``GembusApp.log_call``: gateway_call, usage, metrics, a log line),
so it reads in the transaction log like any routed call, a provider's fault as
``Provider.Fault``.

The answer is the provider's Body child in the requester's version, checked against the
requester's contract; a provider's SOAP fault becomes a :class:`~gembus.errors.PartnerFault`
with the provider's own code, message and field (the WSDL's ``cmn:gembusFault`` detail).
Provider down or slow are the gateway's ``Server.ProviderUnavailable`` /
``Server.ProviderTimeout``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lxml import etree

from bus.contracts import Contract
from bus.gateway import Gateway, GatewayMessage, ProviderUnavailableError
from bus.guard import GuardedRequest
from bus.pipeline import fault_for
from bus.soap import COMMON_NS, Fault, SoapVersion
from bus.transform import TransformFailedError, is_fault, parse_envelope
from gembus.context import RequestContext
from gembus.errors import GembusError, PartnerFault, ServerError

#: What the web layer's recorder takes: the routed message, its context, the fault sent (if
#: any), the seconds it took and the response (status, headers, body).
Recorder = Callable[
    [GatewayMessage, RequestContext, Fault | None, float, tuple[str, list[tuple[str, str]], bytes]],
    None,
]
RelayStep = Callable[[GatewayMessage, RequestContext], GatewayMessage]
#: A code a partner may pass on to gembus's caller (anything else becomes a plain Server fault).
_FAULT_CODE = re.compile(r"(Client|Server)(\.[A-Za-z][A-Za-z0-9]*)*")


@dataclass
class GatewayRelay:
    """Set up by gembus.bootstrap once the gateway and the web layer's recorder exist."""

    gateway: Gateway | None = None
    record: Recorder | None = None

    def attach(self, gateway: Gateway, record: Recorder) -> None:
        self.gateway, self.record = gateway, record

    def call(self, request: etree._Element, ctx: RequestContext) -> etree._Element:
        """Route ``request`` (a Body child the pipeline accepted) to its provider; its answer."""
        assert self.gateway is not None and self.record is not None, "attached by bootstrap"
        msg = _message(request, self.gateway.contracts[ctx.family])
        started = time.perf_counter()
        fault: Fault | None = None
        try:
            for step in self.steps(self.gateway):
                msg = step(msg, ctx)
        except Exception as exc:
            fault = fault_for(exc, ctx.message_id)[0]
            raise
        finally:
            body = msg.reply[2] if msg.reply is not None and fault is None else b""
            self.record(msg, ctx, fault, time.perf_counter() - started, ("", [], body))
        return answer(msg)

    @staticmethod
    def steps(gateway: Gateway) -> Sequence[RelayStep]:
        """The gateway's steps after the caller is known and its request validated."""
        return (
            gateway.route,
            _not_to_itself,
            gateway.check_contract,
            gateway.limit,
            gateway.transform_request,
            gateway.start,
            gateway.dispatch,
            gateway.validate_reply,
            gateway.transform_reply,
        )


def _message(request: etree._Element, contract: Contract) -> GatewayMessage:
    """The routed message of a request the pipeline guarded: its own envelope, unchanged."""
    envelope = request.getroottree().getroot()
    version = SoapVersion(etree.QName(envelope).namespace)
    operation = contract.operation_for(request.tag)
    assert operation is not None
    if version is SoapVersion.SOAP12:
        content_type, action = f'{version.content_type}; action="{operation.soap_action}"', None
    else:
        content_type, action = version.content_type, f'"{operation.soap_action}"'
    raw = bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))
    guarded = GuardedRequest(envelope, version, None, request, operation)  # no targetPartner
    return GatewayMessage(
        raw, content_type, action, contract, guarded=guarded, target=contract.family
    )


def _not_to_itself(msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
    """A route to gembus's own service would hand the request back to the same endpoint."""
    if msg.route is not None and msg.route.local:
        raise ServerError(f"{msg.route.service_id} is gembus's own; it cannot serve itself")
    return msg


def answer(msg: GatewayMessage) -> etree._Element:
    """The provider's Body child in the requester's version, or its fault raised as ours."""
    assert msg.reply is not None and msg.route is not None
    status, _, body = msg.reply
    provider = msg.route.provider_id
    try:
        _, child = parse_envelope(body)
    except TransformFailedError as exc:
        raise ProviderUnavailableError(f"{provider} answered HTTP {status}: {exc}") from exc
    if child is None:
        raise ProviderUnavailableError(f"{provider} answered HTTP {status} with an empty Body")
    if is_fault(child):
        raise partner_fault(child, provider)
    schema = msg.contract.schema
    if status != 200 or not schema.validate(child):
        error = schema.error_log.last_error  # type: ignore[attr-defined]
        family = msg.contract.family
        raise ServerError(f"{provider}'s answer violates the {family} contract: {error}")
    return child


def partner_fault(fault: etree._Element, provider: str) -> GembusError:
    """A SOAP 1.1 or 1.2 fault of ``provider`` as the fault gembus passes on."""
    detail = next(fault.iter(f"{{{COMMON_NS}}}gembusFault"), None)
    if detail is None:
        reason = " ".join(etree.tostring(fault, method="text", encoding="unicode").split())
        return ServerError(
            f"{provider} answered a fault without the declared detail: {reason[:500]}"
        )
    code = (detail.findtext(f"{{{COMMON_NS}}}code") or "").strip()
    message = (detail.findtext(f"{{{COMMON_NS}}}message") or "").strip()
    field = detail.findtext(f"{{{COMMON_NS}}}field")
    if not _FAULT_CODE.fullmatch(code):
        return ServerError(f"{provider} answered an undeclared fault code {code[:64]!r}: {message}")
    return PartnerFault(code, message or f"{provider} refused", field=field)
