"""Roaming authorization as the clearing house records it: outcomes, decisions, settings.

Vocabulary of DOMAIN.md 4.1 and 10: an EVSE operator asks whether a roaming driver may charge;
gembus answers ``Authorized``, ``NotAuthorized`` (with one reason, mirrored to its OICP status
code) or ``NotRoaming`` (the operator is itself the customer's EVSP, so the clearing house is
not involved). Every decision is recorded with who asked, what, why, how long it took and
where the answer came from, and both parties can read back their own.

How an EVSP's customers are checked (B2C) is that EVSP's choice, held in its
:class:`AuthorizationSettings`: from the contracts it uploaded (stored list) or by asking its
own AuthorizeRoaming endpoint live, with a timeout and a fallback when it does not answer.
The decision procedure itself lives in domain/clearing/authorizer.py.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from domain.clearing import keys
from domain.clearing.customer_contracts import CONTRACTS_COUNTER, EntitledService, Token
from domain.identifiers import ContractId, EvseId, OperatorId, ProviderId
from domain.marketplace.partners import Page, parse_identifier
from domain.partners import Partner, Role
from domain.ports import UnitOfWork
from gembus.errors import (
    InvalidPeriodError,
    InvalidValueError,
    NotAuthorizedError,
    NotFoundError,
)

#: How long an Authorized decision lets the session start (and a repeat return it).
AUTHORIZATION_VALIDITY = timedelta(minutes=15)
#: Longest period one GetAuthorizationDecisions may ask for.
MAX_QUERY_PERIOD = timedelta(days=31)


class AuthorizationResult(enum.StrEnum):
    AUTHORIZED = "Authorized"
    NOT_AUTHORIZED = "NotAuthorized"
    NOT_ROAMING = "NotRoaming"


class AuthorizationReason(enum.StrEnum):
    """One reason per decision (rm:AuthorizationReasonType, DOMAIN.md section 10)."""

    OK = "OK"
    CALLER_MISMATCH = "CALLER_MISMATCH"
    EVSE_INCONSISTENT = "EVSE_INCONSISTENT"
    EVCO_INCONSISTENT = "EVCO_INCONSISTENT"
    EVSE_UNKNOWN = "EVSE_UNKNOWN"
    RFID_UNKNOWN = "RFID_UNKNOWN"
    CONTRACT_LOCKED = "CONTRACT_LOCKED"
    NO_CONTRACT = "NO_CONTRACT"
    NO_ROAMING_AGREEMENT = "NO_ROAMING_AGREEMENT"
    EVSP_UNKNOWN = "EVSP_UNKNOWN"
    EVSP_TIMEOUT = "EVSP_TIMEOUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL = "INTERNAL"
    DATA_ERROR = "DATA_ERROR"
    NOT_ROAMING = "NOT_ROAMING"

    @property
    def oicp_code(self) -> str:
        """The OICP StatusCode/Code that travels with the reason (three digits, a string)."""
        return OICP_CODES[self]


OICP_CODES: dict[AuthorizationReason, str] = {
    AuthorizationReason.OK: "000",
    AuthorizationReason.CALLER_MISMATCH: "017",
    AuthorizationReason.EVSE_INCONSISTENT: "018",
    AuthorizationReason.EVCO_INCONSISTENT: "019",
    AuthorizationReason.EVSE_UNKNOWN: "603",
    AuthorizationReason.RFID_UNKNOWN: "102",
    AuthorizationReason.CONTRACT_LOCKED: "200",
    AuthorizationReason.NO_CONTRACT: "210",
    AuthorizationReason.NO_ROAMING_AGREEMENT: "210",  # OICP has no code of its own for it
    AuthorizationReason.EVSP_UNKNOWN: "300",
    AuthorizationReason.EVSP_TIMEOUT: "310",
    AuthorizationReason.SERVICE_UNAVAILABLE: "320",
    AuthorizationReason.INTERNAL: "021",
    AuthorizationReason.DATA_ERROR: "022",
    AuthorizationReason.NOT_ROAMING: "000",  # gembus extension
}


class DecisionSource(enum.StrEnum):
    STORED_LIST = "storedList"
    LIVE_EVSP = "liveEvsp"
    STORED_DECISION = "storedDecision"
    CLEARING_HOUSE = "clearingHouse"


class AuthorizationMode(enum.StrEnum):
    """How the clearing house checks an EVSP's customers (DOMAIN.md 4.1, step 4)."""

    STORED_LIST = "storedList"
    LIVE_EVSP = "liveEvsp"


class LiveFallback(enum.StrEnum):
    """What a live EVSP's silence (timeout, unreachable, unusable answer) leads to."""

    DENY = "deny"  # NotAuthorized with EVSP_TIMEOUT or SERVICE_UNAVAILABLE: never a silent allow
    STORED_LIST = "storedList"  # decide from the contracts the EVSP uploaded


#: Defaults for an EVSP that never chose: the stored list; live asks wait 1.5 s and deny.
DEFAULT_MODE = AuthorizationMode.STORED_LIST
DEFAULT_LIVE_TIMEOUT_MS = 1500
DEFAULT_FALLBACK = LiveFallback.DENY
LIVE_TIMEOUT_RANGE_MS = (50, 30_000)


@dataclass(frozen=True)
class AuthorizationSettings:
    partner_id: str
    mode: AuthorizationMode = DEFAULT_MODE
    live_timeout_ms: int = DEFAULT_LIVE_TIMEOUT_MS
    fallback: LiveFallback = DEFAULT_FALLBACK
    updated_at: datetime | None = None  # None: never set, the defaults apply
    updated_by: str | None = None

    @property
    def live_timeout_s(self) -> float:
        return self.live_timeout_ms / 1000


@dataclass(frozen=True)
class AuthorizationRequest:
    """AuthorizeRoaming as received; every identifier in its wire form."""

    operator_id: str
    evse_id: str
    contract_id: str | None = None
    token: Token | None = None
    partner_session_id: str | None = None

    def content_hash(self) -> str:
        """What a repeat must match besides (operator, partnerSessionId): the same EVSE,
        contract and token (DOMAIN.md 11: same key, different content is a new decision)."""
        parts = [_key(keys.evse_id, self.evse_id), _key(keys.contract_id, self.contract_id)]
        if self.token is not None:
            parts += sorted(":".join(d) for d in self.token.digests())
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


class Keyed(Protocol):
    """A parsed identifier: EvseId, ContractId, OperatorId, ProviderId."""

    @property
    def key(self) -> str: ...


Parse = Callable[[str], Keyed]


def _key(parse: Parse, wire: str | None) -> str:
    if wire is None:
        return "-"
    try:
        return parse(wire).key
    except ValueError:  # InvalidIdentifier: the wire form stands for itself
        return wire


@dataclass(frozen=True)
class Decision:
    """One recorded authorization decision: who asked, what, why, how fast, from where."""

    session_id: str
    decided_at: datetime
    message_id: str
    caller_partner_id: str
    operator_partner_id: str
    operator_id: str
    operator_key: str | None
    evse_id: str
    evse_key: str | None
    contract_id: str | None  # as received, or the contract a token-only request resolved to
    contract_key: str | None
    token: Token | None
    partner_session_id: str | None
    provider_id: str | None  # the customer's home EVSP, where known
    provider_key: str | None
    provider_partner_id: str | None
    result: AuthorizationResult
    reason: AuthorizationReason
    description: str | None
    source: DecisionSource
    valid_until: datetime | None
    stop_tokens: tuple[Token, ...]
    stop_contract_ids: tuple[str, ...]
    latency_ms: float
    request_hash: str

    @property
    def oicp_code(self) -> str:
        return self.reason.oicp_code


def provider_wire_of(contract_id: str) -> str:
    """The provider part of a contract ID as the partner wrote it (``NL-TNM``, ``DE*BMW``)."""
    return contract_id[:6] if contract_id[2:3] in ("-", "*") else contract_id[:5]


# --------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class Recorded:
    """What recording a decision learnt, in the same database statement."""

    fresh: bool  # the WS-Security nonce was new (False: a replay, nothing was written)
    partners_version: int  # the partners change counter (the identity cache checks it)
    contracts_version: int  # the customer-contracts change counter (the authorizer's cache)
    prior: Decision | None  # a repeat: the decision stored for (operator, partnerSessionId)


#: (username, nonce, expires at): the caller's WS-Security nonce, recorded with the decision.
NonceClaim = tuple[str, str, datetime]


class DecisionLog(Protocol):
    """Where decisions are recorded (persistence/authorization_log.py), one statement each."""

    def record(self, decision: Decision, nonce: NonceClaim | None) -> Recorded:
        """Insert the decision unless a valid one for the same (operator, partnerSessionId,
        content) exists, which is returned instead; records the nonce in the same statement."""
        ...

    def prior(
        self, operator_key: str, partner_session_id: str, request_hash: str, at: datetime
    ) -> Decision | None:
        """The stored decision a repeat of this request would return (read only)."""
        ...

    def correct(self, decision: Decision) -> None:
        """Replace the recorded decision with the same session ID (its facts were stale)."""
        ...


class LiveEvspTimeout(Exception):
    """The EVSP's live endpoint did not answer within its timeout."""


class LiveEvspUnavailable(Exception):
    """The EVSP's live endpoint could not be asked or gave no usable answer."""


@dataclass(frozen=True)
class LiveAnswer:
    """What an EVSP's own AuthorizeRoaming answered (its decisionSource is ignored)."""

    result: AuthorizationResult
    reason: AuthorizationReason
    description: str | None = None
    contract_id: str | None = None
    valid_until: datetime | None = None
    stop_tokens: tuple[Token, ...] = ()
    stop_contract_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PurchasedServices:
    """GetPurchasedServices: the services listed, or the reason none can be."""

    contract_id: str
    provider_id: str | None
    reason: AuthorizationReason
    services: tuple[EntitledService, ...] = ()


class LiveEvsp(Protocol):
    """An EVSP's own authorization endpoint (same interface as gembus's); adapters/live_evsp.py.

    Both methods raise :class:`LiveEvspTimeout` or :class:`LiveEvspUnavailable`.
    """

    def authorize(
        self, endpoint_url: str, request: AuthorizationRequest, session_id: str, timeout_s: float
    ) -> LiveAnswer: ...

    def purchased_services(
        self,
        endpoint_url: str,
        operator_id: str,
        evse_id: str | None,
        contract_id: str,
        timeout_s: float,
    ) -> PurchasedServices: ...


# --------------------------------------------------------------------------- settings


def settings_of(uow: UnitOfWork, partner_id: str) -> AuthorizationSettings:
    """The EVSP's settings, or the defaults when it never chose."""
    return uow.authorizations.get_settings(partner_id) or AuthorizationSettings(partner_id)


def set_settings(
    uow: UnitOfWork,
    partner_id: str,
    *,
    mode: AuthorizationMode | None,
    live_timeout_ms: int | None,
    fallback: LiveFallback | None,
    actor: str,
    at: datetime,
) -> AuthorizationSettings:
    """Change what is given, keep the rest; every process applies it with its next decision."""
    _evsp(uow, partner_id)
    low, high = LIVE_TIMEOUT_RANGE_MS
    if live_timeout_ms is not None and not low <= live_timeout_ms <= high:
        raise InvalidValueError(
            f"the live timeout must be {low}..{high} ms", field="live_timeout_ms"
        )
    current = settings_of(uow, partner_id)
    updated = replace(
        current,
        mode=mode or current.mode,
        live_timeout_ms=live_timeout_ms or current.live_timeout_ms,
        fallback=fallback or current.fallback,
        updated_at=at,
        updated_by=actor,
    )
    uow.authorizations.put_settings(updated)
    uow.marketplace.bump(CONTRACTS_COUNTER)
    return updated


def reset_settings(uow: UnitOfWork, partner_id: str) -> AuthorizationSettings:
    """Back to the defaults."""
    _evsp(uow, partner_id)
    uow.authorizations.delete_settings(partner_id)
    uow.marketplace.bump(CONTRACTS_COUNTER)
    return AuthorizationSettings(partner_id)


def _evsp(uow: UnitOfWork, partner_id: str) -> Partner:
    partner = uow.partners.get(partner_id)
    if partner is None:
        raise NotFoundError("Partner", f"no partner {partner_id}", field="partner_id")
    if not partner.has_role(Role.EVSP):
        raise InvalidValueError(
            f"{partner_id} is not an EVSP: only EVSPs authorize customers", field="partner_id"
        )
    return partner


# --------------------------------------------------------------------------- audit queries


@dataclass(frozen=True)
class DecisionQuery:
    """GetAuthorizationDecisions: a half-open period on decidedAt and optional filters."""

    start: datetime
    end: datetime
    operator_id: str | None = None
    provider_id: str | None = None
    evse_id: str | None = None
    contract_id: str | None = None
    result: AuthorizationResult | None = None


@dataclass(frozen=True)
class DecisionFilter:
    """The query in keys, plus whose decisions the caller may see (None: everybody's)."""

    start: datetime
    end: datetime
    visible_to: str | None
    operator_key: str | None
    provider_key: str | None
    evse_key: str | None
    contract_key: str | None
    result: AuthorizationResult | None


def list_decisions(
    uow: UnitOfWork, actor: Partner, query: DecisionQuery, page: Page
) -> tuple[list[Decision], int]:
    """Decisions in which the caller is the operator or the home EVSP (all for the marketplace
    operator), ordered by decidedAt then sessionId."""
    if query.end <= query.start:
        raise InvalidPeriodError("the period must end after it starts", field="period/end")
    if query.end - query.start > MAX_QUERY_PERIOD:
        raise InvalidPeriodError("the period may cover at most 31 days", field="period")
    everyone = actor.has_role(Role.MARKETPLACE_OPERATOR)
    operator_key = _filter_key(actor, OperatorId.parse, query.operator_id, "operatorId", everyone)
    provider_key = _filter_key(actor, ProviderId.parse, query.provider_id, "providerId", everyone)
    evse_key = _parsed_key(EvseId.parse, query.evse_id, "evseId")
    contract_key = _parsed_key(ContractId.parse, query.contract_id, "contractId")
    found = DecisionFilter(
        query.start,
        query.end,
        None if everyone else actor.partner_id,
        operator_key,
        provider_key,
        evse_key,
        contract_key,
        query.result,
    )
    return uow.authorizations.decisions(found, (page.offset, page.size))


def _filter_key(
    actor: Partner, parse: Parse, wire: str | None, field: str, everyone: bool
) -> str | None:
    """A filter may only name the caller's own operator/provider IDs."""
    key = _parsed_key(parse, wire, field)
    if key is None or everyone:
        return key
    own = {o.key for o in actor.data.operator_ids} | {p.key for p in actor.data.provider_ids}
    if key not in own:
        raise NotAuthorizedError(f"{wire} is not one of {actor.partner_id}'s IDs", field=field)
    return key


def _parsed_key(parse: Parse, wire: str | None, field: str) -> str | None:
    if wire is None:
        return None
    return parse_identifier(parse, wire, field).key
