"""Asking an EVSP's own authorization endpoint live, with zeep (DOMAIN.md 4.1 "ask live").

An EVSP that authorizes its customers itself implements gembus's canonical authorization
contract (``wsdl/authorization.wsdl``) at the endpoint it registered on the marketplace.
gembus forwards the operator's AuthorizeRoaming (and GetPurchasedServices) there, adding its
own sessionId, and waits at most the EVSP's live timeout.

The zeep clients are built from the canonical WSDL on disk (never fetched from the partner),
one per thread (zeep clients and their HTTP sessions are not shared between threads), and
every answer is validated against the canonical XSD before it is believed. Foreign errors are
translated here, where they enter (STYLE.md 6): a timeout becomes
:class:`~domain.clearing.authorization.LiveEvspTimeout`; refused connections, HTTP errors,
SOAP faults and answers that break the contract become
:class:`~domain.clearing.authorization.LiveEvspUnavailable`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import requests
from lxml import etree
from zeep import Client, Plugin, Settings
from zeep.exceptions import Error as ZeepError
from zeep.transports import Transport

from bus.contracts import WSDL_DIR, all_contracts
from bus.soap import SOAP11_ENV
from domain.clearing.authorization import (
    AuthorizationReason,
    AuthorizationRequest,
    AuthorizationResult,
    LiveAnswer,
    LiveEvspTimeout,
    LiveEvspUnavailable,
    PurchasedServices,
)
from domain.clearing.customer_contracts import EntitledService, LocalizedText, Token
from domain.marketplace.model import Validity

BINDING = "{urn:gembus:authorization:v1}AuthorizationSoap11Binding"
_SETTINGS = Settings(strict=True, forbid_dtd=True, forbid_entities=True, xml_huge_tree=False)


class ContractBreach(Exception):
    """The EVSP's answer does not validate against the canonical authorization XSD."""


class _ValidateAnswers(Plugin):
    """Every answer body is checked against the canonical schema (faults are zeep's)."""

    def __init__(self) -> None:
        self.schema = all_contracts()["authorization"].schema

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> Any:
        body = envelope.find(f"{{{SOAP11_ENV}}}Body")
        child = body[0] if body is not None and len(body) else None
        if child is None:
            raise ContractBreach("the answer has no Body")
        if etree.QName(child).localname != "Fault" and not self.schema.validate(child):
            raise ContractBreach(str(self.schema.error_log.last_error))  # type: ignore[attr-defined]
        return envelope, http_headers


class ZeepLiveEvsp:
    """Implements domain.clearing.authorization.LiveEvsp."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _client(self, timeout_s: float) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            transport = Transport(timeout=10, operation_timeout=timeout_s)  # type: ignore[no-untyped-call]
            client = Client(  # type: ignore[no-untyped-call]
                str(WSDL_DIR / "authorization.wsdl"),
                transport=transport,
                settings=_SETTINGS,
                plugins=[_ValidateAnswers()],
            )
            self._local.client = client
        client.transport.operation_timeout = timeout_s
        return client

    def authorize(
        self, endpoint_url: str, request: AuthorizationRequest, session_id: str, timeout_s: float
    ) -> LiveAnswer:
        service = self._client(timeout_s).create_service(BINDING, endpoint_url)  # type: ignore[no-untyped-call]
        reply = _call(
            service.AuthorizeRoaming,
            operatorId=request.operator_id,
            evseId=request.evse_id,
            contractId=request.contract_id,
            token=_token_out(request.token),
            partnerSessionId=request.partner_session_id,
            sessionId=session_id,
        )
        return _answer(reply)

    def purchased_services(
        self,
        endpoint_url: str,
        operator_id: str,
        evse_id: str | None,
        contract_id: str,
        timeout_s: float,
    ) -> PurchasedServices:
        service = self._client(timeout_s).create_service(BINDING, endpoint_url)  # type: ignore[no-untyped-call]
        reply = _call(
            service.GetPurchasedServices,
            operatorId=operator_id,
            evseId=evse_id,
            contractId=contract_id,
        )
        services = reply.services.service if reply.services is not None else []
        return PurchasedServices(
            contract_id,
            reply.providerId,
            _reason(reply.reason),
            tuple(_service(s) for s in services),
        )


def _call(operation: Any, **values: Any) -> Any:
    try:
        return operation(**values)
    except requests.Timeout as exc:
        raise LiveEvspTimeout(str(exc)) from exc
    except requests.RequestException as exc:
        raise LiveEvspUnavailable(f"cannot be reached: {type(exc).__name__}") from exc
    except ContractBreach as exc:
        raise LiveEvspUnavailable(f"answered outside the contract: {exc}") from exc
    except (ZeepError, etree.XMLSyntaxError, ValueError) as exc:
        raise LiveEvspUnavailable(f"gave no usable answer: {str(exc)[:200]}") from exc


def _token_out(token: Token | None) -> dict[str, str | None] | None:
    if token is None:
        return None
    return {
        "instance": token.instance,
        "tokenType": token.token_type,
        "tokenSubType": token.sub_type,
        "representation": token.representation,
    }


def _token_in(value: Any) -> Token:
    return Token(value.instance, value.tokenType, value.tokenSubType, value.representation)


def _reason(value: Any) -> AuthorizationReason:
    try:
        return AuthorizationReason(value)
    except ValueError as exc:
        raise LiveEvspUnavailable(f"answered an unknown reason {value!r}") from exc


def _answer(reply: Any) -> LiveAnswer:
    try:
        result = AuthorizationResult(reply.result)
    except ValueError as exc:
        raise LiveEvspUnavailable(f"answered an unknown result {reply.result!r}") from exc
    stops = reply.authorizationStopIdentifications
    return LiveAnswer(
        result,
        _reason(reply.reason),
        reply.reasonDescription,
        reply.contractId,
        _utc(reply.validUntil),
        tuple(_token_in(t) for t in (stops.token if stops is not None else [])),
        tuple(stops.contractId if stops is not None else []),
    )


def _service(value: Any) -> EntitledService:
    names = tuple(LocalizedText(n._value_1, n.lang) for n in (value.name or []))
    validity = None
    if value.validity is not None:
        valid_from = _utc(value.validity.validFrom)
        assert valid_from is not None
        validity = Validity(valid_from, _utc(value.validity.validTo))
    return EntitledService(value.serviceType, value.serviceCode, names, validity)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
