"""The clearing house's roaming authorization: the checks of DOMAIN.md 4.1, in their order.

1. Caller identity: the operator ID is the caller's (CALLER_MISMATCH) and the EVSE is that
   operator's (EVSE_UNKNOWN when it cannot be resolved, EVSE_INCONSISTENT).
2. Syntax: token (DATA_ERROR) and contract ID with its check digit (EVCO_INCONSISTENT); the
   contract ID's provider prefix names the home EVSP (EVSP_UNKNOWN when nobody owns it).
3. Not roaming: the operator's partner is itself the home EVSP (NOT_ROAMING).
4. B2B: a roaming agreement between operator and EVSP, asked of SRV 1967's in-process cache
   (NO_ROAMING_AGREEMENT).
5. B2C, as the EVSP chose (:class:`~domain.clearing.authorization.AuthorizationSettings`):
   its stored contracts (NO_CONTRACT, CONTRACT_LOCKED, RFID_UNKNOWN) or its own live
   endpoint within its timeout (EVSP_TIMEOUT / SERVICE_UNAVAILABLE, or the stored list when
   that is its fallback). A token without a contract ID is looked up in every stored list
   first, then every live EVSP with a roaming agreement is asked; any yes authorizes.

Business outcomes are answers, not faults; a bug inside the checks becomes the INTERNAL
answer (021) and is reported to ``on_error``. The stored contracts and settings come from a
per-process cache, and the statement that records the decision also reads the change counter
of the stored lists: had they changed since the cache was filled, the decision is made again
on fresh data and the record corrected, so an answer never lags behind a committed upload.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from domain.clearing import keys
from domain.clearing.authorization import (
    AUTHORIZATION_VALIDITY,
    AuthorizationMode,
    AuthorizationReason,
    AuthorizationRequest,
    AuthorizationResult,
    AuthorizationSettings,
    Decision,
    DecisionLog,
    DecisionSource,
    LiveAnswer,
    LiveEvsp,
    LiveEvspTimeout,
    LiveEvspUnavailable,
    LiveFallback,
    NonceClaim,
    PurchasedServices,
    Recorded,
    provider_wire_of,
)
from domain.clearing.customer_contracts import (
    ContractStatus,
    Digest,
    StoredContract,
    Token,
    TokenType,
)
from domain.identifiers import ContractId, EvseId, InvalidIdentifier, OperatorId
from domain.marketplace.validation import AgreementAnswer, Reason
from domain.partners import Partner
from gembus.errors import GembusError, InvalidIdentifierError, NotAuthorizedError

R = AuthorizationReason
_AUTHORIZED = AuthorizationResult.AUTHORIZED
_DENIED = AuthorizationResult.NOT_AUTHORIZED
#: What an EVSP may answer live; anything else (OK without Authorized, a gembus check...) is
#: an unusable answer.
LIVE_DENIALS = frozenset(
    {
        R.NO_CONTRACT,
        R.CONTRACT_LOCKED,
        R.RFID_UNKNOWN,
        R.EVCO_INCONSISTENT,
        R.EVSE_UNKNOWN,
        R.DATA_ERROR,
        R.INTERNAL,
        R.SERVICE_UNAVAILABLE,
    }
)
_HEX = re.compile(r"[0-9A-Fa-f]+")
_DIGEST_LENGTH = {"sha-256": 64, "sha-160": 40}


class AgreementChecker(Protocol):
    """SRV 1967 as the clearing house uses it (domain.marketplace.validation)."""

    def validate_roaming_agreement(
        self, operator_id: str, provider_id: str, at: datetime | None = None
    ) -> AgreementAnswer: ...


class StoredFacts(Protocol):
    """The stored lists and settings, each read with the change counter of the same moment."""

    def contract(self, key: str) -> tuple[int, StoredContract | None]: ...

    def settings(self, partner_id: str) -> tuple[int, AuthorizationSettings]: ...

    def by_tokens(self, digests: frozenset[Digest]) -> list[StoredContract]: ...


@dataclass
class StoredListCache:
    """Stored contracts and settings per process, all of one change-counter ``version``.

    A decision brackets its reads with :meth:`begin` and :meth:`used`: the versions its facts
    came from. More than one means the lists changed while it was deciding (facts of two
    versions mixed), and the authorizer decides again.
    """

    source: StoredFacts
    max_entries: int = 200_000
    version: int = -1
    _contracts: dict[str, StoredContract | None] = field(default_factory=dict)
    _settings: dict[str, AuthorizationSettings] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def begin(self) -> None:
        self._local.used = set()

    def used(self) -> set[int]:
        return set(getattr(self._local, "used", set()))

    def contract(self, key: str) -> StoredContract | None:
        with self._lock:
            if key in self._contracts:
                self._use(self.version)
                return self._contracts[key]
        version, found = self.source.contract(key)
        with self._lock:
            self._adopt(version)
            self._contracts[key] = found
        self._use(version)
        return found

    def settings(self, partner_id: str) -> AuthorizationSettings:
        with self._lock:
            cached = self._settings.get(partner_id)
            if cached is not None:
                self._use(self.version)
                return cached
        version, found = self.source.settings(partner_id)
        with self._lock:
            self._adopt(version)
            self._settings[partner_id] = found
        self._use(version)
        return found

    def by_tokens(self, digests: frozenset[Digest]) -> list[StoredContract]:
        """Token look-ups are rare (token-only requests) and read the database every time."""
        return self.source.by_tokens(digests)

    def reset(self, version: int) -> None:
        with self._lock:
            self._contracts.clear()
            self._settings.clear()
            self.version = version

    def _use(self, version: int) -> None:
        used: set[int] | None = getattr(self._local, "used", None)
        if used is not None:
            used.add(version)

    def _adopt(self, version: int) -> None:
        if version != self.version or len(self._contracts) >= self.max_entries:
            self._contracts.clear()
            self._settings.clear()
            self.version = version


class NonceGate(Protocol):
    """The caller's unrecorded WS-Security nonce (gembus.context.DeferredNonce)."""

    @property
    def claim(self) -> NonceClaim | None:
        """What is still to record; None once recorded (or for a token without nonce)."""
        ...

    def consume(self) -> None:
        """Record it now in its own statement; Client.Authentication for a replay."""
        ...


@dataclass(frozen=True)
class Ask:
    """One AuthorizeRoaming as the endpoint hands it over."""

    request: AuthorizationRequest
    caller: Partner
    message_id: str
    at: datetime
    #: The caller's nonce, not yet recorded: the decision's statement records it, or
    #: ``_secure`` does before any partner system is asked (a replay must never reach one).
    gate: NonceGate | None = None
    session_id: str = field(default_factory=lambda: f"auth-{uuid.uuid4()}")
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Home:
    """The customer's home EVSP: provider ID as written, its key, the partner owning it."""

    provider_id: str
    provider_key: str
    partner_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    result: AuthorizationResult
    reason: AuthorizationReason
    source: DecisionSource = DecisionSource.CLEARING_HOUSE
    description: str | None = None
    home: Home | None = None
    contract_id: str | None = None  # the contract a token-only request resolved to
    valid_until: datetime | None = None
    stop_tokens: tuple[Token, ...] = ()
    stop_contract_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The decision to answer with (the stored one for a repeat) and what recording learnt."""

    decision: Decision
    recorded: Recorded

    @property
    def repeated(self) -> bool:
        return self.decision.source is DecisionSource.STORED_DECISION


class _Decided(Exception):
    """A check reached its answer; the remaining checks do not run."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason.value)
        self.verdict = verdict


def _deny(
    reason: AuthorizationReason, description: str | None = None, home: Home | None = None
) -> _Decided:
    return _Decided(Verdict(_DENIED, reason, description=description, home=home))


@dataclass
class Authorizer:
    """One per process; thread-safe."""

    agreements: AgreementChecker
    facts: StoredListCache
    live: LiveEvsp
    #: The endpoint of an EVSP's published authorization service (None: it has none).
    live_endpoint: Callable[[str], str | None]
    #: (provider key, EVSP partner) of every roaming agreement the operator key holds at t.
    roaming_partners: Callable[[str, datetime], list[tuple[str, str]]]
    log: DecisionLog
    on_error: Callable[[BaseException], None] = lambda exc: None
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="gembus-live-evsp")
    )

    # ------------------------------------------------------------------ AuthorizeRoaming
    def authorize(self, ask: Ask) -> Answer:
        """Decide, record (one statement, with the caller's nonce) and answer."""
        verdict, version = self._consistent_verdict(ask)
        decision = self._decision(ask, verdict)
        recorded = self.log.record(decision, ask.gate.claim if ask.gate is not None else None)
        if not recorded.fresh:
            return Answer(decision, recorded)  # a replay: nothing was written
        if recorded.prior is not None:
            return Answer(replace(recorded.prior, source=DecisionSource.STORED_DECISION), recorded)
        if version is not None and recorded.contracts_version != version:
            decision = self._recheck(ask, decision, recorded.contracts_version)
        return Answer(decision, recorded)

    def _recheck(self, ask: Ask, decision: Decision, version: int) -> Decision:
        """The stored lists changed while this decision was made: decide again on fresh data
        and correct the record if the answer differs."""
        self.facts.reset(version)
        verdict, _ = self._consistent_verdict(ask)
        again = replace(self._decision(ask, verdict), latency_ms=decision.latency_ms)
        if _answer_of(again) != _answer_of(decision):
            self.log.correct(again)
            return again
        return decision

    def _consistent_verdict(self, ask: Ask) -> tuple[Verdict, int | None]:
        """A verdict whose stored facts all come from one version of the stored lists, and
        that version (None: it needed no stored facts)."""
        for _ in range(3):
            self.facts.begin()
            verdict = self.decide(ask)
            used = self.facts.used()
            if len(used) <= 1:
                return verdict, next(iter(used), None)
        return verdict, max(used)

    def decide(self, ask: Ask) -> Verdict:
        try:
            return self._checks(ask)
        except _Decided as decided:
            return decided.verdict
        except GembusError:
            raise  # the database is away and the like: a declared fault, not an answer
        except Exception as exc:  # a bug must deny, never allow, and leave a trace
            self.on_error(exc)
            return Verdict(_DENIED, R.INTERNAL, description="clearing house error")

    def _checks(self, ask: Ask) -> Verdict:
        operator = self._operator(ask)
        self._evse(ask, operator)
        token = self._token(ask)
        if ask.request.contract_id is None:
            assert token is not None, "the endpoint refuses a request with neither"
            return self._token_only(ask, operator, token)
        contract = self._contract(ask.request.contract_id)
        home = self._home(
            ask.caller, ask.at, operator, contract.provider_key, provider_wire_of(contract.wire)
        )
        return self._customer(ask, home, contract, token)

    # ------------------------------------------------------------------ 1. caller identity
    @staticmethod
    def _operator(ask: Ask) -> OperatorId:
        wire = ask.request.operator_id
        own = {o.key for o in ask.caller.data.operator_ids}
        try:
            operator = keys.operator_id(wire)
        except InvalidIdentifier:
            operator = None
        if operator is None or operator.key not in own:
            raise _deny(R.CALLER_MISMATCH, f"{wire} is not an operator ID of the caller")
        return operator

    @staticmethod
    def _evse(ask: Ask, operator: OperatorId) -> EvseId:
        wire = ask.request.evse_id
        try:
            evse = keys.evse_id(wire)
        except InvalidIdentifier as exc:
            raise _deny(R.EVSE_UNKNOWN, f"EVSE {wire} cannot be resolved: {exc.reason}") from None
        if evse.operator_key != operator.key:
            raise _deny(R.EVSE_INCONSISTENT, f"EVSE {wire} is not operated by {operator.wire}")
        return evse

    # ------------------------------------------------------------------ 2. syntax
    @staticmethod
    def _token(ask: Ask) -> Token | None:
        token = ask.request.token
        if token is None:
            return None
        problem = token_problem(token)
        if problem is not None:
            raise _deny(R.DATA_ERROR, problem)
        return token

    @staticmethod
    def _contract(wire: str) -> ContractId:
        try:
            return keys.contract_id(wire)
        except InvalidIdentifier as exc:
            raise _deny(R.EVCO_INCONSISTENT, f"contract ID {wire}: {exc.reason}") from None

    # ------------------------------------------------------------------ 3. + 4. home EVSP, B2B
    def _home(
        self,
        caller: Partner,
        at: datetime,
        operator: OperatorId,
        provider_key: str,
        provider_id: str,
    ) -> Home:
        answer = self.agreements.validate_roaming_agreement(operator.key, provider_key, at)
        home = Home(provider_id, provider_key, answer.provider_partner_id)
        if answer.provider_partner_id is None:
            raise _deny(R.EVSP_UNKNOWN, f"no partner owns provider ID {provider_id}", home)
        if answer.provider_partner_id == caller.partner_id:
            raise _Decided(
                Verdict(
                    AuthorizationResult.NOT_ROAMING,
                    R.NOT_ROAMING,
                    description="the operator is the customer's own EVSP",
                    home=home,
                )
            )
        if answer.reason is Reason.PARTNER_INACTIVE:
            raise _deny(R.EVSP_UNKNOWN, answer.text, home)
        if not answer.valid:
            raise _deny(R.NO_ROAMING_AGREEMENT, _agreement_text(answer), home)
        return home

    # ------------------------------------------------------------------ 5. B2C
    def _customer(self, ask: Ask, home: Home, contract: ContractId, token: Token | None) -> Verdict:
        assert home.partner_id is not None
        settings = self.facts.settings(home.partner_id)
        if settings.mode is AuthorizationMode.LIVE_EVSP:
            return self._live(ask, home, contract, token, settings)
        return self._stored(ask, home, contract, token)

    def _stored(
        self, ask: Ask, home: Home, contract: ContractId, token: Token | None, note: str = ""
    ) -> Verdict:
        stored = self.facts.contract(contract.key)
        verdict = stored_verdict(stored, contract.wire, token, ask.at)
        description = f"{note}{verdict.description or ''}" or None
        return replace(verdict, home=home, description=description)

    def _live(
        self,
        ask: Ask,
        home: Home,
        contract: ContractId,
        token: Token | None,
        settings: AuthorizationSettings,
    ) -> Verdict:
        repeat = self._repeat(ask)
        if repeat is not None:
            return repeat
        self._secure(ask)
        try:
            answer = self._ask_live(ask, home, settings)
            return replace(_from_live(answer, ask, contract.wire, token), home=home)
        except LiveEvspTimeout:
            reason, text = R.EVSP_TIMEOUT, f"did not answer within {settings.live_timeout_ms} ms"
        except LiveEvspUnavailable as exc:
            reason, text = R.SERVICE_UNAVAILABLE, str(exc)
        if settings.fallback is LiveFallback.STORED_LIST:
            note = f"live EVSP {reason.value.lower()} ({text}); from the stored list: "
            return self._stored(ask, home, contract, token, note)
        return Verdict(_DENIED, reason, description=f"EVSP {home.partner_id} {text}", home=home)

    @staticmethod
    def _secure(ask: Ask) -> None:
        """Before a partner system is asked: record the caller's nonce (a replayed message is
        refused here, before it can make gembus call anyone)."""
        if ask.gate is not None:
            ask.gate.consume()

    def _ask_live(self, ask: Ask, home: Home, settings: AuthorizationSettings) -> LiveAnswer:
        assert home.partner_id is not None
        url = self.live_endpoint(home.partner_id)
        if url is None:
            raise LiveEvspUnavailable("has no published authorization service")
        answer = self.live.authorize(url, ask.request, ask.session_id, settings.live_timeout_s)
        if not _usable(answer):
            raise LiveEvspUnavailable(
                f"answered {answer.result.value}/{answer.reason.value}, which is not usable"
            )
        return answer

    def _repeat(self, ask: Ask) -> Verdict | None:
        """A repeat is answered from the record without asking the EVSP again."""
        request = ask.request
        if request.partner_session_id is None:
            return None
        key = keys.operator_id(request.operator_id).key
        prior = self.log.prior(key, request.partner_session_id, request.content_hash(), ask.at)
        if prior is None:
            return None
        home = None
        if prior.provider_key is not None:
            home = Home(prior.provider_id or "", prior.provider_key, prior.provider_partner_id)
        return Verdict(
            prior.result,
            prior.reason,
            DecisionSource.STORED_DECISION,
            prior.description,
            home,
            prior.contract_id,
            prior.valid_until,
            prior.stop_tokens,
            prior.stop_contract_ids,
        )

    # ------------------------------------------------------------------ token only
    def _token_only(self, ask: Ask, operator: OperatorId, token: Token) -> Verdict:
        """DOMAIN.md 4.1 routing order: every stored list, then every live EVSP with an
        agreement with the operator; the first yes wins."""
        candidates = self.facts.by_tokens(token.digests())
        if candidates:
            verdicts = [self._stored_candidate(ask, operator, s, token) for s in candidates]
            return _best(verdicts)
        return self._ask_every_evsp(ask, operator, token)

    def _stored_candidate(
        self, ask: Ask, operator: OperatorId, stored: StoredContract, token: Token
    ) -> Verdict:
        wire = stored.contract.contract_id
        try:
            home = self._home(
                ask.caller, ask.at, operator, stored.provider_key, provider_wire_of(wire)
            )
        except _Decided as decided:
            return replace(decided.verdict, contract_id=wire)
        verdict = stored_verdict(stored, wire, token, ask.at)
        return replace(verdict, home=home, contract_id=wire)

    def _ask_every_evsp(self, ask: Ask, operator: OperatorId, token: Token) -> Verdict:
        evsps = self._live_evsps(ask, operator)
        if not evsps:
            raise _deny(R.RFID_UNKNOWN, "the token is in no stored list and no EVSP answers live")
        repeat = self._repeat(ask)
        if repeat is not None:
            return repeat
        self._secure(ask)
        asked: dict[Future[Verdict], AuthorizationSettings] = {
            self.pool.submit(self._ask_for_token, ask, provider_keys, settings, token): settings
            for settings, provider_keys in evsps
        }
        budget = max(s.live_timeout_s for s in asked.values()) + 1.0
        done, _ = wait(asked, timeout=budget)
        verdicts = [f.result() for f in done]
        verdicts += [_silent(s) for f, s in asked.items() if f not in done]
        return _best_live(verdicts)

    def _live_evsps(
        self, ask: Ask, operator: OperatorId
    ) -> list[tuple[AuthorizationSettings, frozenset[str]]]:
        """Live EVSPs with an agreement with the operator, each with its provider keys."""
        by_partner: dict[str, set[str]] = {}
        for provider_key, partner_id in self.roaming_partners(operator.key, ask.at):
            if partner_id != ask.caller.partner_id:
                by_partner.setdefault(partner_id, set()).add(provider_key)
        found = []
        for partner_id, provider_keys in sorted(by_partner.items()):
            settings = self.facts.settings(partner_id)
            if settings.mode is AuthorizationMode.LIVE_EVSP:
                found.append((settings, frozenset(provider_keys)))
        return found

    def _ask_for_token(
        self,
        ask: Ask,
        provider_keys: frozenset[str],
        settings: AuthorizationSettings,
        token: Token,
    ) -> Verdict:
        home = Home("", "", settings.partner_id)
        try:
            answer = self._ask_live(ask, home, settings)
        except LiveEvspTimeout:
            return _silent(settings)
        except LiveEvspUnavailable as exc:
            return Verdict(_DENIED, R.SERVICE_UNAVAILABLE, description=str(exc))
        if answer.result is not _AUTHORIZED:
            return Verdict(_DENIED, R.RFID_UNKNOWN, DecisionSource.LIVE_EVSP)
        contract = _contract_of_evsp(answer.contract_id, provider_keys)
        if contract is None:
            return Verdict(
                _DENIED,
                R.SERVICE_UNAVAILABLE,
                description=f"{settings.partner_id} authorized without a contract ID of its own",
            )
        home = Home(provider_wire_of(contract.wire), contract.provider_key, settings.partner_id)
        verdict = _from_live(answer, ask, contract.wire, token)
        return replace(verdict, home=home, contract_id=contract.wire)

    # ------------------------------------------------------------------ GetPurchasedServices
    def purchased_services(
        self,
        caller: Partner,
        operator_id: str,
        evse_id: str | None,
        contract_id: str,
        at: datetime,
    ) -> PurchasedServices:
        """The services the contract's holder may consume, from the stored contract or the
        live EVSP; identity problems are faults here (the contract says so)."""
        operator = _own_operator(caller, operator_id)
        if evse_id is not None:
            _operators_evse(operator, evse_id)
        contract = _parsed_contract(contract_id)
        provider_id = provider_wire_of(contract_id)
        try:
            home = self._home(caller, at, operator, contract.provider_key, provider_id)
        except _Decided as decided:
            known = decided.verdict.home
            provider = known.provider_id if known is not None else None
            return PurchasedServices(contract_id, provider, decided.verdict.reason)
        return self._services(operator_id, evse_id, home, contract, at)

    def _services(
        self,
        operator_id: str,
        evse_id: str | None,
        home: Home,
        contract: ContractId,
        at: datetime,
    ) -> PurchasedServices:
        assert home.partner_id is not None
        settings = self.facts.settings(home.partner_id)
        if settings.mode is AuthorizationMode.LIVE_EVSP:
            url = self.live_endpoint(home.partner_id)
            try:
                if url is None:
                    raise LiveEvspUnavailable("no published authorization service")
                answer = self.live.purchased_services(
                    url, operator_id, evse_id, contract.wire, settings.live_timeout_s
                )
                return replace(answer, contract_id=contract.wire, provider_id=home.provider_id)
            except LiveEvspTimeout:
                reason = R.EVSP_TIMEOUT
            except LiveEvspUnavailable:
                reason = R.SERVICE_UNAVAILABLE
            if settings.fallback is not LiveFallback.STORED_LIST:
                return PurchasedServices(contract.wire, home.provider_id, reason)
        return stored_services(self.facts.contract(contract.key), contract.wire, home, at)

    # ------------------------------------------------------------------ the record
    def _decision(self, ask: Ask, verdict: Verdict) -> Decision:
        request = ask.request
        contract_id = request.contract_id or verdict.contract_id
        home = verdict.home
        stop_tokens, stop_contracts = verdict.stop_tokens, verdict.stop_contract_ids
        if verdict.result is _AUTHORIZED and not (stop_tokens or stop_contracts):
            stop_tokens = (request.token,) if request.token else ()
            stop_contracts = (contract_id,) if contract_id else ()
        return Decision(
            session_id=ask.session_id,
            decided_at=ask.at,
            message_id=ask.message_id,
            caller_partner_id=ask.caller.partner_id,
            operator_partner_id=ask.caller.partner_id,
            operator_id=request.operator_id,
            operator_key=_key_or_none(keys.operator_id, request.operator_id),
            evse_id=request.evse_id,
            evse_key=_key_or_none(keys.evse_id, request.evse_id),
            contract_id=contract_id,
            contract_key=_key_or_none(keys.contract_id, contract_id),
            token=request.token,
            partner_session_id=request.partner_session_id,
            provider_id=home.provider_id if home and home.provider_id else None,
            provider_key=home.provider_key if home and home.provider_key else None,
            provider_partner_id=home.partner_id if home else None,
            result=verdict.result,
            reason=verdict.reason,
            description=(verdict.description or None) and verdict.description[:2000],
            source=verdict.source,
            valid_until=verdict.valid_until if verdict.result is _AUTHORIZED else None,
            stop_tokens=stop_tokens,
            stop_contract_ids=stop_contracts,
            latency_ms=round((time.perf_counter() - ask.started) * 1000, 3),
            request_hash=request.content_hash(),
        )


# --------------------------------------------------------------------------- pure rules


def token_problem(token: Token) -> str | None:
    """Why a presented token cannot be used (DATA_ERROR), or None."""
    if token.token_type == TokenType.REMOTE:
        return "tokenType remote is only valid in SDRs"
    instance = token.instance.strip()
    if not token.is_plain:
        length = _DIGEST_LENGTH.get(str(token.representation))
        if length is None or len(instance) != length or not _HEX.fullmatch(instance):
            return f"a {token.representation} token is {length} hexadecimal characters"
        return None
    if token.token_type == TokenType.RFID and not _HEX.fullmatch(instance):
        return "an RFID UID is hexadecimal"
    return None


def stored_verdict(
    stored: StoredContract | None, contract_id: str, token: Token | None, at: datetime
) -> Verdict:
    """The B2C answer from the EVSP's uploaded contract (DOMAIN.md 10)."""
    source = DecisionSource.STORED_LIST
    if stored is None:
        return Verdict(_DENIED, R.NO_CONTRACT, source, f"no contract {contract_id} is stored")
    contract = stored.contract
    status = contract.status_at(at)
    if status is ContractStatus.EXPIRED:
        return Verdict(_DENIED, R.NO_CONTRACT, source, "the contract has expired")
    if contract.validity.valid_from > at:
        return Verdict(_DENIED, R.NO_CONTRACT, source, "the contract is not valid yet")
    if status is ContractStatus.BLOCKED:
        return Verdict(_DENIED, R.CONTRACT_LOCKED, source, "the contract is blocked by its EVSP")
    if _foreign_token(token, contract.digests()):
        return Verdict(_DENIED, R.RFID_UNKNOWN, source, "the token is not one of the contract's")
    valid_until = at + AUTHORIZATION_VALIDITY
    if contract.validity.valid_to is not None:
        valid_until = min(valid_until, contract.validity.valid_to)
    return Verdict(_AUTHORIZED, R.OK, source, valid_until=valid_until)


def _foreign_token(token: Token | None, digests: frozenset[Digest]) -> bool:
    """An RFID card that is not one of the contract's listed tokens."""
    if token is None or token.token_type != TokenType.RFID or not digests:
        return False
    return not token.digests() & digests


def stored_services(
    stored: StoredContract | None, contract_id: str, home: Home, at: datetime
) -> PurchasedServices:
    verdict = stored_verdict(stored, contract_id, None, at)
    if verdict.result is not _AUTHORIZED or stored is None:
        return PurchasedServices(contract_id, home.provider_id, verdict.reason)
    services = stored.contract.services_at(at)
    return PurchasedServices(contract_id, home.provider_id, R.OK, services)


def _usable(answer: LiveAnswer) -> bool:
    if answer.result is _AUTHORIZED:
        return answer.reason is R.OK
    return answer.result is _DENIED and answer.reason in LIVE_DENIALS


def _from_live(answer: LiveAnswer, ask: Ask, contract_id: str, token: Token | None) -> Verdict:
    source = DecisionSource.LIVE_EVSP
    if answer.result is not _AUTHORIZED:
        return Verdict(_DENIED, answer.reason, source, answer.description)
    limit = ask.at + AUTHORIZATION_VALIDITY
    valid_until = min(answer.valid_until, limit) if answer.valid_until else limit
    return Verdict(
        _AUTHORIZED,
        R.OK,
        source,
        answer.description,
        valid_until=valid_until,
        stop_tokens=answer.stop_tokens,
        stop_contract_ids=answer.stop_contract_ids,
    )


def _silent(settings: AuthorizationSettings) -> Verdict:
    """A live EVSP that did not answer a token-only ask in time."""
    if settings.fallback is LiveFallback.STORED_LIST:  # its stored list has no such token
        return Verdict(_DENIED, R.RFID_UNKNOWN, DecisionSource.STORED_LIST)
    return Verdict(
        _DENIED,
        R.EVSP_TIMEOUT,
        description=f"EVSP {settings.partner_id} did not answer within "
        f"{settings.live_timeout_ms} ms",
    )


def _best(verdicts: Sequence[Verdict]) -> Verdict:
    """Several stored contracts carry the token: any yes wins, then not-roaming, then the first."""
    for wanted in (AuthorizationResult.AUTHORIZED, AuthorizationResult.NOT_ROAMING):
        for verdict in verdicts:
            if verdict.result is wanted:
                return verdict
    return verdicts[0]


def _best_live(verdicts: Sequence[Verdict]) -> Verdict:
    """Any yes wins; else silence (the answer might have been yes) or an outage outranks no."""
    for wanted in (R.OK, R.EVSP_TIMEOUT, R.SERVICE_UNAVAILABLE):
        for verdict in verdicts:
            if verdict.reason is wanted:
                return verdict
    return Verdict(_DENIED, R.RFID_UNKNOWN, DecisionSource.LIVE_EVSP, "no EVSP accepted the token")


def _contract_of_evsp(wire: str | None, provider_keys: frozenset[str]) -> ContractId | None:
    if wire is None:
        return None
    try:
        contract = keys.contract_id(wire)
    except InvalidIdentifier:
        return None
    return contract if contract.provider_key in provider_keys else None


def _agreement_text(answer: AgreementAnswer) -> str:
    if answer.reason is Reason.NO_CONTRACT:
        return "no roaming agreement"
    return f"roaming agreement {answer.reason.value.lower().replace('_', ' ')}"


def _answer_of(decision: Decision) -> tuple[object, ...]:
    return (decision.result, decision.reason, decision.source, decision.provider_partner_id)


def _key_or_none(
    parse: Callable[[str], ContractId | EvseId | OperatorId], wire: str | None
) -> str | None:
    if wire is None:
        return None
    try:
        return parse(wire).key
    except InvalidIdentifier:
        return None


def _own_operator(caller: Partner, operator_id: str) -> OperatorId:
    try:
        operator = keys.operator_id(operator_id)
    except InvalidIdentifier:
        operator = None
    if operator is None or operator.key not in {o.key for o in caller.data.operator_ids}:
        raise NotAuthorizedError(f"{operator_id} is not the caller's", field="operatorId")
    return operator


def _operators_evse(operator: OperatorId, evse_id: str) -> None:
    try:
        evse = keys.evse_id(evse_id)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(f"{evse_id!r}: {exc.reason}", field="evseId") from exc
    if evse.operator_key != operator.key:
        raise NotAuthorizedError(f"EVSE {evse_id} is not {operator.wire}'s", field="evseId")


def _parsed_contract(contract_id: str) -> ContractId:
    try:
        return keys.contract_id(contract_id)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(f"{contract_id!r}: {exc.reason}", field="contractId") from exc
