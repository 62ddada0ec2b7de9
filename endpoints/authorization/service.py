"""Roaming authorization (``wsdl/authorization.wsdl``) on the lxml path: it is the hot path.

AuthorizeRoaming is read from the tree the guard already parsed and the bus validated (one
pass over the Body child's children), decided by the process's shared
:class:`~domain.clearing.authorizer.Authorizer` from in-process caches, recorded together
with the caller's WS-Security nonce in one database statement, and answered with elements
built directly. Business outcomes (NotAuthorized and why) are answers; faults are kept for
what the contract declares: not an EVSE operator, neither contract ID nor token, bad
identifiers in GetPurchasedServices, bad periods and filters in the audit query.
"""

from __future__ import annotations

from lxml import etree

from domain.clearing.authorization import (
    AuthorizationReason,
    AuthorizationRequest,
    AuthorizationResult,
    Decision,
    DecisionQuery,
    PurchasedServices,
    list_decisions,
)
from domain.clearing.authorizer import Answer, Ask, Authorizer
from domain.partners import Partner, Role
from endpoints.customer_contracts.messages import (
    CMN,
    children,
    required,
    services_out,
    stamp,
    sub,
    sub_optional,
    text_of,
    timestamp,
    token_in,
    token_out,
)
from endpoints.customer_contracts.service import page_info_out, page_of
from gembus.context import RequestContext
from gembus.errors import MissingIdentifierError, NotAuthorizedError

NS = "urn:gembus:authorization:v1"
RM = "urn:gembus:roaming:v1"
_NSMAP = {"az": NS, "cmn": CMN}


def authorize_roaming(request: etree._Element, ctx: RequestContext) -> etree._Element:
    caller = _operator(ctx)
    asked = authorization_request(request)
    pending = ctx.deferred_nonce
    answer = _authorizer(ctx).authorize(Ask(asked, caller, ctx.message_id, ctx.now(), pending))
    if pending is not None and not pending.settled:  # recorded by the decision's statement:
        pending.settle(answer.recorded.fresh, answer.recorded.partners_version)  # replay raises
    _log(ctx, answer)
    return authorize_response(asked, answer.decision)


def get_purchased_services(request: etree._Element, ctx: RequestContext) -> etree._Element:
    caller = _operator(ctx)
    found = children(request)
    contract_id = required(found, "contractId")
    answer = _authorizer(ctx).purchased_services(
        caller, required(found, "operatorId"), text_of(found, "evseId"), contract_id, ctx.now()
    )
    return purchased_services_response(answer)


def get_authorization_decisions(request: etree._Element, ctx: RequestContext) -> etree._Element:
    found = children(request)
    period = children(found["period"])
    result = text_of(found, "result")
    query = DecisionQuery(
        timestamp(required(period, "start")),
        timestamp(required(period, "end")),
        text_of(found, "operatorId"),
        text_of(found, "providerId"),
        text_of(found, "evseId"),
        text_of(found, "contractId"),
        AuthorizationResult(result) if result else None,
    )
    page = page_of(found.get("paging"))
    with ctx.uow() as uow:
        decisions, total = list_decisions(uow, ctx.actor, query, page)
    root = etree.Element(f"{{{NS}}}GetAuthorizationDecisionsResponse", nsmap=_NSMAP)
    for decision in decisions:
        _decision_out(root, decision)
    page_info_out(root, NS, page, total)
    return root


# --------------------------------------------------------------------------- reading


def _operator(ctx: RequestContext) -> Partner:
    caller = ctx.actor
    if not caller.has_role(Role.EVSE_OPERATOR):
        raise NotAuthorizedError("only EVSE operators ask for authorizations", field="operatorId")
    return caller


def _authorizer(ctx: RequestContext) -> Authorizer:
    authorizer = ctx.shared.authorizer
    assert authorizer is not None, "gembus.bootstrap builds the authorizer"
    return authorizer


def authorization_request(request: etree._Element) -> AuthorizationRequest:
    """AuthorizeRoaming's fields (a sessionId is gembus's own, set only towards live EVSPs)."""
    found = children(request)
    token = found.get("token")
    asked = AuthorizationRequest(
        required(found, "operatorId"),
        required(found, "evseId"),
        text_of(found, "contractId"),
        token_in(token) if token is not None else None,
        text_of(found, "partnerSessionId"),
    )
    if asked.contract_id is None and asked.token is None:
        raise MissingIdentifierError("send a contractId, a token or both", field="contractId")
    return asked


# --------------------------------------------------------------------------- writing


def authorize_response(asked: AuthorizationRequest, decision: Decision) -> etree._Element:
    """The answer; identifiers are echoed as the operator sent them."""
    root = etree.Element(f"{{{NS}}}AuthorizeRoamingResponse", nsmap=_NSMAP)
    sub(root, NS, "result", decision.result.value)
    sub(root, NS, "reason", decision.reason.value)
    sub(root, NS, "oicpStatusCode", decision.oicp_code)
    sub_optional(root, NS, "reasonDescription", decision.description)
    sub(root, NS, "sessionId", decision.session_id)
    sub_optional(root, NS, "partnerSessionId", asked.partner_session_id)
    sub(root, NS, "evseId", asked.evse_id)
    authorized = decision.result is AuthorizationResult.AUTHORIZED
    sub_optional(
        root, NS, "contractId", asked.contract_id or (decision.contract_id if authorized else None)
    )
    if asked.token is not None:
        token_out(root, NS, "token", asked.token)
    sub_optional(root, NS, "providerId", decision.provider_id)
    sub(root, NS, "decisionSource", decision.source.value)
    if authorized and (decision.stop_tokens or decision.stop_contract_ids):
        stops = sub(root, NS, "authorizationStopIdentifications")
        for token in decision.stop_tokens[:20]:
            token_out(stops, NS, "token", token)
        for contract_id in decision.stop_contract_ids[:5]:
            sub(stops, NS, "contractId", contract_id)
    if authorized and decision.valid_until is not None:
        sub(root, NS, "validUntil", stamp(decision.valid_until))
    return root


def purchased_services_response(answer: PurchasedServices) -> etree._Element:
    root = etree.Element(
        f"{{{NS}}}GetPurchasedServicesResponse", nsmap={"az": NS, "rm": RM, "cmn": CMN}
    )
    sub(root, NS, "contractId", answer.contract_id)
    sub_optional(root, NS, "providerId", answer.provider_id)
    sub(root, NS, "reason", answer.reason.value)
    sub(root, NS, "oicpStatusCode", answer.reason.oicp_code)
    if answer.reason is AuthorizationReason.OK and answer.services:
        services_out(root, NS, answer.services)
    return root


def _decision_out(parent: etree._Element, decision: Decision) -> None:
    element = sub(parent, NS, "decision")
    sub(element, NS, "sessionId", decision.session_id)
    sub(element, NS, "decidedAt", stamp(decision.decided_at))
    sub(element, NS, "operatorId", decision.operator_id)
    sub_optional(element, NS, "providerId", decision.provider_id)
    sub(element, NS, "evseId", decision.evse_id)
    sub_optional(element, NS, "contractId", decision.contract_id)
    if decision.token is not None:
        token_out(element, NS, "token", decision.token)
    sub_optional(element, NS, "partnerSessionId", decision.partner_session_id)
    sub(element, NS, "result", decision.result.value)
    sub(element, NS, "reason", decision.reason.value)
    sub(element, NS, "oicpStatusCode", decision.oicp_code)
    sub(element, NS, "decisionSource", decision.source.value)
    if decision.valid_until is not None:
        sub(element, NS, "validUntil", stamp(decision.valid_until))


def _log(ctx: RequestContext, answer: Answer) -> None:
    decision = answer.decision
    ctx.log.debug(  # the decision itself is in the audit table; this line is for tracing
        "authorization.decision",
        session_id=decision.session_id,
        result=decision.result.value,
        reason=decision.reason.value,
        source=decision.source.value,
        provider=decision.provider_partner_id,
        decision_ms=decision.latency_ms,
    )


HANDLERS = {
    "AuthorizeRoaming": authorize_roaming,
    "GetPurchasedServices": get_purchased_services,
    "GetAuthorizationDecisions": get_authorization_decisions,
}
