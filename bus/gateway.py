"""The Dynamic Service Gateway (SRV 1968): one entry point for every registered service.

    guard -> identify -> route -> check contract -> limit -> validate -> transform request
          -> dispatch -> validate reply -> transform reply -> record

Routed traffic is not rebuilt into objects: the guard's single parse is the only tree, the
route is chosen from the service in the URL, an explicit target partner header, or the EVSE
ID / contract ID in the Body; the caller's service contract with the provider is checked
through SRV 1967's cache; then gembus's own services are dispatched in process and external
providers receive the request's bytes unchanged over a pooled HTTP client, with a per-provider
timeout and a circuit breaker. Every call is written to the transaction log.

Versions. The gateway URL says which version of a family the requester speaks:
``/gateway/<family>`` speaks v1 and ``/gateway/<family>_v<N>`` speaks vN (the contract keys of
bus/contracts.py, e.g. ``/gateway/reservation`` and ``/gateway/reservation_v2``, each serving
its own WSDL at ``?wsdl``); ``/gateway/<serviceId>`` speaks the version that service
implements. Routing by content or target partner considers every provider of the family,
whatever version its service implements (a provider offering several versions is chosen in
the requester's). When the routed service's version differs from the requester's, the Body
child is converted (bus/transform.py) to the provider's version before dispatch, with the
provider's SOAPAction and the requester's SOAP Header, and the reply back after it; faults
pass through. Only then: same-version traffic stays pass-through bytes. A version pair
without transforms both ways is refused up front with Client.UnsupportedVersion.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from bus.contracts import Contract, contract_key
from bus.forward import Forwarder, ForwardError, ForwardFailure
from bus.pipeline import Message, Pipeline
from bus.routing import Route, Router
from bus.soap import SoapVersion
from bus.transform import (
    TransformFailedError,
    TransformRegistry,
    default_registry,
    is_fault,
    parse_envelope,
    rewrap,
)
from bus.wsse import Consumed, NonceClaim, Verified
from domain.gateway_calls import CallLog, CallStart, Ticket
from domain.identifiers import ContractId, EvseId
from domain.marketplace.model import Quota
from domain.marketplace.partners import parse_identifier
from domain.marketplace.usage import over_quota
from domain.marketplace.validation import ContractValidator
from domain.ports import UnitOfWork
from gembus.context import RequestContext
from gembus.errors import ClientError, ServerError

GATEWAY_NS = "urn:gembus:gateway:v1"
TARGET_PARTNER = f"{{{GATEWAY_NS}}}targetPartner"
#: A provider's reply larger than this is refused (Server fault) rather than buffered.
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024
_EVSE_ID = etree.XPath("(.//*[local-name()='evseId'])[1]/text()")
_CONTRACT_ID = etree.XPath("(.//*[local-name()='contractId'])[1]/text()")


class NoContractError(ClientError):
    fault_code = "Client.NoContract"
    default_message = "the caller holds no active service contract for this service"


class QuotaExceededError(ClientError):
    fault_code = "Client.QuotaExceeded"
    default_message = "the contract's call quota is used up"


class RateLimitedError(ClientError):
    fault_code = "Client.RateLimited"
    default_message = "too many calls per second"


class UnsupportedVersionError(ClientError):
    fault_code = "Client.UnsupportedVersion"
    default_message = "the provider implements a version of the family gembus cannot convert to"


class ProviderUnavailableError(ServerError):
    fault_code = "Server.ProviderUnavailable"
    default_message = "the provider is unavailable; retry later"


class ProviderTimeoutError(ServerError):
    fault_code = "Server.ProviderTimeout"
    default_message = "the provider did not answer in time"


@dataclass
class GatewayMessage(Message):
    """A routed message: the route, the contract it runs under, and the provider's reply."""

    target: str = ""
    route: Route | None = None
    contract_id: str | None = None
    over_quota: bool = False
    reply: tuple[int, str, bytes] | None = None  # status, content type, body (external only)
    #: Set only when the provider speaks another version than the requester (msg.contract):
    #: the provider's contract, and the converted request (body, content type, SOAPAction).
    provider_contract: Contract | None = None
    converted: tuple[bytes, str, str | None] | None = None
    #: The caller's checked token, its nonce not yet recorded (``start`` records it).
    verified: Verified | None = None
    #: The transaction-log rows ``start`` wrote; the web layer finishes them.
    ticket: Ticket | None = None


@dataclass
class Breaker:
    """Consecutive failures suspend an endpoint with exponential backoff (1 s doubling to 60 s)."""

    threshold: int = 3
    base_s: float = 1.0
    max_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _state: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, endpoint: str) -> None:
        failures, until = self._state.get(endpoint, (0, 0.0))
        if failures >= self.threshold and self.clock() < until:
            raise ProviderUnavailableError(
                f"the provider endpoint is suspended for {until - self.clock():.1f} s after "
                f"{failures} consecutive failures"
            )

    def success(self, endpoint: str) -> None:
        with self._lock:
            self._state.pop(endpoint, None)

    def failure(self, endpoint: str) -> None:
        with self._lock:
            failures, _ = self._state.get(endpoint, (0, 0.0))
            failures += 1
            pause = min(self.max_s, self.base_s * 2 ** max(0, failures - self.threshold))
            self._state[endpoint] = (failures, self.clock() + pause)


@dataclass
class RateLimiter:
    """Per-partner calls per second in this process (a token bucket)."""

    per_second: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, partner_id: str, now: float | None = None) -> None:
        if self.per_second <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(partner_id, (self.per_second, now))
            tokens = min(self.per_second, tokens + (now - last) * self.per_second)
            if tokens < 1:
                raise RateLimitedError(f"more than {self.per_second:g} calls per second")
            self._buckets[partner_id] = (tokens - 1, now)


@dataclass
class Gateway:
    """The gateway's pipeline; the web layer calls ``run`` and writes the reply."""

    pipeline: Pipeline
    router: Router
    validator: ContractValidator
    uow: Callable[[], UnitOfWork]
    contracts: dict[str, Contract]
    timeout_s: float = 10.0
    validate_responses: str = "off"  # "always", "off", or "sample:<fraction>"
    rate: RateLimiter = field(default_factory=lambda: RateLimiter(50.0))
    breaker: Breaker = field(default_factory=Breaker)
    #: Version transforms by (family, from, to), compiled once per process.
    transforms: TransformRegistry = field(default_factory=default_registry)
    #: The transaction log (persistence/transaction_log.py); None records nothing and lets
    #: the identity store record nonces (unit tests).
    log: CallLog | None = None
    #: The outbound hop (libcurl, one handle per thread; see bus/forward.py).
    forwarder: Forwarder = field(default_factory=lambda: Forwarder(DEFAULT_MAX_REPLY_BYTES))

    def contract_for(self, target: str) -> Contract:
        """The contract a gateway URL speaks: a contract key (``reservation``,
        ``reservation_v2``), or the family and version of a service ID."""
        if target in self.contracts:
            return self.contracts[target]
        route = self.router.table.for_service(target)
        return self.contracts[contract_key(route.family, route.version)]

    def run(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        for step in (
            self.pipeline.guard,
            self.identify,
            self.route,
            self.check_contract,
            self.limit,
            self.pipeline.validate,
            self.transform_request,
            self.start,
            self.dispatch,
            self.validate_reply,
            self.transform_reply,
        ):
            msg = step(msg, ctx)  # type: ignore[assignment]
        return msg

    def identify(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        """The caller's token is checked now; its nonce is recorded by ``start``, in the same
        statement as the call, once the call is known to be forwarded."""
        if self.pipeline.is_anonymous(msg):
            return self.pipeline.identify(msg, ctx)  # type: ignore[return-value]
        assert msg.guarded is not None
        msg.verified = self.pipeline.authenticator.verify(msg.guarded.header)
        self.pipeline.adopt(msg.verified.credential, ctx)
        return msg

    def route(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        assert msg.guarded is not None
        table = self.router.table
        # Routes carry the marketplace's family name ("reservation") and version; the requester's
        # version is the one of the contract its gateway URL speaks (see the module docstring).
        family, version = msg.contract.family_name, msg.contract.version
        if msg.target not in self.contracts:
            msg.route = table.for_service(msg.target)
        elif (target := _target_partner(msg.guarded.header)) is not None:
            msg.route = table.for_partner(family, target, version)
        else:
            msg.route = self._by_content(family, version, msg.guarded.body_child)
        ctx.log = ctx.log.bind(service=msg.route.service_id, provider=msg.route.provider_id)
        if msg.route.version != version and not msg.route.local:
            if not self.transforms.bridges(family, version, msg.route.version):
                raise UnsupportedVersionError(
                    f"{msg.route.provider_id} implements {family} v{msg.route.version}, which "
                    f"gembus cannot convert to and from v{version}",
                    field="service",
                )
            msg.provider_contract = self.contracts[contract_key(family, msg.route.version)]
            ctx.log = ctx.log.bind(transform=f"v{version}->v{msg.route.version}")
        return msg

    def _by_content(self, family: str, version: int, body: etree._Element) -> Route:
        # evseId and contractId are found at any depth, so v2's customer/contractId routes too.
        table = self.router.table
        evse = _first(_EVSE_ID(body))
        if evse:
            operator_key = parse_identifier(EvseId.parse, evse, "evseId").operator_key
            return table.for_operator(family, operator_key, version)
        contract = _first(_CONTRACT_ID(body))
        if contract:
            provider_key = parse_identifier(ContractId.parse, contract, "contractId").provider_key
            return table.for_provider_key(family, provider_key, version)
        routes = table._family(family)
        if len(routes) == 1:
            return routes[0]
        raise ClientError(
            "the message names no EVSE ID or contract ID to route by; address a "
            "service ID or set the gw:targetPartner header",
            field="service",
        )

    def check_contract(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        route = msg.route
        assert route is not None
        answer = self.validator.validate_service_contract(
            ctx.actor.partner_id, route.provider_id, service_id=route.service_id
        )
        if not answer.valid:
            raise NoContractError(
                f"{ctx.actor.partner_id} has no active contract for service {route.service_id} of "
                f"{route.provider_id} ({answer.reason.value}); accept one of its offerings first",
                field="service",
            )
        contract = answer.contracts[0][0]
        msg.contract_id = contract.contract_id
        msg.over_quota = self._over_quota(contract.contract_id, contract.terms.quota)
        return msg

    def _over_quota(self, contract_id: str, quota: Quota | None) -> bool:
        if quota is None:  # no database session for the common, unmetered case
            return False
        with self.uow() as uow:
            over = over_quota(uow, contract_id, quota, datetime.now(UTC))
        if over and quota is not None and quota.overrun_price is None:
            raise QuotaExceededError(
                f"the contract allows {quota.per_day or quota.per_month} calls per "
                f"{'day' if quota.per_day else 'month'}; no overrun is offered"
            )
        return over

    def limit(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        self.rate.take(ctx.actor.partner_id)
        return msg

    def transform_request(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        """Only across versions: the Body child in the provider's version, re-enveloped with the
        requester's SOAP Header, and the provider's SOAPAction for the same operation."""
        provider = msg.provider_contract
        if provider is None:
            return msg
        assert msg.guarded is not None
        requester = msg.contract
        child = self.transforms.apply(
            requester.family_name, requester.version, provider.version, msg.guarded.body_child
        )
        operation = provider.operation_for(child.tag)
        if operation is None or not provider.schema.validate(child):
            error = provider.schema.error_log.last_error  # type: ignore[attr-defined]
            raise TransformFailedError(f"the converted request violates {provider.family}: {error}")
        body = rewrap(msg.guarded.envelope, child)
        if msg.guarded.version is SoapVersion.SOAP12:  # SOAP 1.2 carries the action in the type
            content_type = f'{SoapVersion.SOAP12.content_type}; action="{operation.soap_action}"'
            action = f'"{operation.soap_action}"' if msg.soap_action is not None else None
        else:
            content_type, action = SoapVersion.SOAP11.content_type, f'"{operation.soap_action}"'
        msg.converted = (body, content_type, action)
        return msg

    def start(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        """Record the nonce and the call in one statement, then settle the caller's identity:
        a replayed nonce is refused here, before anything reaches the provider."""
        verified, route = msg.verified, msg.route
        assert route is not None and ctx.partner is not None
        claim = verified.claim if verified is not None else None
        if self.log is None:
            if claim is not None and verified is not None:
                self.pipeline.adopt(
                    self.pipeline.authenticator.settle(verified, self._consume(verified, claim)),
                    ctx,
                )
            return msg
        started = self.log.start(
            CallStart(
                datetime.now(UTC),
                ctx.message_id,
                ctx.partner.partner_id,
                route.provider_id,
                route.service_id,
                msg.contract.family,
                ctx.operation,
                msg.contract_id,
                len(msg.raw),
                msg.over_quota,
            ),
            (claim.username, claim.nonce, claim.expires_at) if claim is not None else None,
        )
        msg.ticket = started.ticket
        if verified is not None:
            current = started.counter == verified.credential.version
            credential = self.pipeline.authenticator.settle(
                verified, Consumed(started.fresh, current)
            )
            if credential is not verified.credential:
                self.pipeline.adopt(credential, ctx)
        return msg

    def _consume(self, verified: Verified, claim: NonceClaim) -> Consumed:
        store = self.pipeline.authenticator.store
        return store.consume(
            claim.username, claim.nonce, claim.expires_at, verified.credential.version
        )

    def dispatch(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        route = msg.route
        assert route is not None
        if route.local:
            return self.pipeline.dispatch(msg, ctx)  # type: ignore[return-value]
        self.breaker.check(route.endpoint_url)
        outbound = msg
        if msg.converted is not None:  # a copy, so msg.raw stays what the requester sent
            raw, content_type, action = msg.converted
            outbound = dataclasses.replace(
                msg, raw=raw, content_type=content_type, soap_action=action
            )
        msg.reply = self._forward(route, outbound)
        return msg

    def _forward(self, route: Route, msg: GatewayMessage) -> tuple[int, str, bytes]:
        timeout_s = route.timeout_s or self.timeout_s
        try:
            reply = self.forwarder.post(
                route.endpoint_url,
                msg.raw,
                msg.content_type or "text/xml; charset=utf-8",
                msg.soap_action,
                timeout_s,
            )
        except ForwardError as exc:
            if exc.kind is ForwardFailure.TOO_LARGE:
                raise ServerError(
                    f"{route.provider_id}'s reply exceeds {self.forwarder.max_reply_bytes} bytes"
                ) from exc
            self.breaker.failure(route.endpoint_url)
            if exc.kind is ForwardFailure.TIMEOUT:
                raise ProviderTimeoutError(
                    f"{route.provider_id} did not answer within {timeout_s:g} s"
                ) from exc
            raise ProviderUnavailableError(
                f"{route.provider_id} cannot be reached ({exc.detail})"
            ) from exc
        if reply.status in (502, 503, 504):
            self.breaker.failure(route.endpoint_url)
            raise ProviderUnavailableError(f"{route.provider_id} answered HTTP {reply.status}")
        self.breaker.success(route.endpoint_url)
        return reply.status, reply.content_type, reply.body

    def validate_reply(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        """Local replies are always checked; external ones as the deployment says, explicitly."""
        if msg.reply is None:
            return self.pipeline.validate_response(msg, ctx)  # type: ignore[return-value]
        if not _sampled(msg.route.validation if msg.route else None, self.validate_responses):
            return msg
        status, _, body = msg.reply
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
        child = root[-1][0] if len(root) and len(root[-1]) else None
        contract = msg.provider_contract or msg.contract  # still in the provider's version here
        schema = contract.schema
        if status == 200 and child is not None and not schema.validate(child):
            error = schema.error_log.last_error  # type: ignore[attr-defined]
            raise ServerError(
                f"the provider's reply violates the {contract.family} contract: {error}"
            )
        return msg

    def transform_reply(self, msg: GatewayMessage, ctx: RequestContext) -> GatewayMessage:
        """Only across versions: the provider's answer in the requester's version, checked
        against the requester's contract; faults (and empty or non-200 bodies) pass through."""
        provider = msg.provider_contract
        if provider is None or msg.reply is None:
            return msg
        status, content_type, body = msg.reply
        if status != 200:
            return msg
        envelope, child = parse_envelope(body)
        if child is None or is_fault(child):
            return msg
        requester = msg.contract
        converted = self.transforms.apply(
            requester.family_name, provider.version, requester.version, child
        )
        if not requester.schema.validate(converted):
            error = requester.schema.error_log.last_error  # type: ignore[attr-defined]
            raise TransformFailedError(f"the converted reply violates {requester.family}: {error}")
        msg.reply = (status, content_type, rewrap(envelope, converted))
        return msg


def _sampled(policy: str | None, default: str) -> bool:
    """Whether to validate this reply: the route's policy, else the deployment's default."""
    mode = policy or default
    if mode == "always":
        return True
    if mode.startswith("sample:"):
        return random.random() < float(mode.split(":", 1)[1])
    return False


def _target_partner(header: etree._Element | None) -> str | None:
    if header is None:
        return None
    found = header.find(TARGET_PARTNER)
    return (found.text or "").strip() or None if found is not None else None


def _first(found: object) -> str | None:
    if isinstance(found, list) and found:
        return str(found[0]).strip() or None
    return None
