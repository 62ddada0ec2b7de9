"""Contract Validation (SRV 1967): is there a valid contract between X and Y for S at time t?

The Clearing House asks it about roaming agreements and the gateway about service contracts on
every routed call, so answers come from an in-process cache of *facts* (the pair's contracts or
agreements and the partners' status); the decision at time t is computed on each call, so time-
dependent answers (expired, not yet valid) are exact without invalidation. The cache is
dropped when this process changes the marketplace (``invalidate``) and, for changes made by
other workers or nodes, when the database's change counter moves, polled at most every
``refresh_s`` seconds (the staleness bound across processes).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.identifiers import OperatorId, ProviderId
from domain.marketplace.catalogue import CACHE_COUNTER
from domain.marketplace.model import (
    AgreementStatus,
    InterfaceRef,
    LifecycleState,
    RoamingAgreement,
    Service,
    ServiceContract,
)
from domain.marketplace.partners import parse_identifier
from domain.partners import PartnerStatus
from domain.ports import UnitOfWork


class Reason(enum.StrEnum):
    OK = "OK"
    NO_CONTRACT = "NO_CONTRACT"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    TERMINATED = "TERMINATED"
    UNKNOWN_PARTNER = "UNKNOWN_PARTNER"
    PARTNER_INACTIVE = "PARTNER_INACTIVE"
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    SERVICE_RETIRED = "SERVICE_RETIRED"


_BY_STATUS = {
    AgreementStatus.PENDING: Reason.NOT_YET_VALID,
    AgreementStatus.EXPIRED: Reason.EXPIRED,
    AgreementStatus.TERMINATED: Reason.TERMINATED,
}


@dataclass(frozen=True)
class ContractAnswer:
    valid: bool
    reason: Reason
    checked_at: datetime
    contracts: tuple[tuple[ServiceContract, Service], ...] = ()
    text: str | None = None


@dataclass(frozen=True)
class AgreementAnswer:
    valid: bool
    reason: Reason
    checked_at: datetime
    agreements: tuple[RoamingAgreement, ...] = ()
    operator_partner_id: str | None = None
    provider_partner_id: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class _PairFacts:
    missing: str | None  # partner ID that does not exist
    inactive: str | None  # partner ID that is not active
    contracts: tuple[tuple[ServiceContract, Service], ...]


@dataclass(frozen=True)
class _AgreementFacts:
    operator_partner_id: str | None
    provider_partner_id: str | None
    inactive: str | None
    agreements: tuple[RoamingAgreement, ...]


@dataclass
class ContractValidator:
    """SRV 1967 with its cache; one per process, shared by the SOAP endpoint and the gateway."""

    uow: Callable[[], UnitOfWork]
    refresh_s: float = 0.25
    clock: Callable[[], float] = time.monotonic
    _pairs: dict[tuple[str, str], _PairFacts] = field(default_factory=dict)
    _agreements: dict[tuple[str, str], _AgreementFacts] = field(default_factory=dict)
    _counter: int = -1
    _checked: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invalidate(self) -> None:
        with self._lock:
            self._pairs.clear()
            self._agreements.clear()
            self._checked = float("-inf")

    def _fresh(self) -> None:
        """Drop the cache when another process changed the marketplace (bounded polling)."""
        now = self.clock()
        if now - self._checked < self.refresh_s:
            return
        with self.uow() as uow:
            counter = uow.marketplace.counter(CACHE_COUNTER)
        with self._lock:
            if counter != self._counter:
                self._pairs.clear()
                self._agreements.clear()
                self._counter = counter
            self._checked = now

    def validate_service_contract(
        self,
        requester_id: str,
        provider_id: str,
        *,
        service_id: str | None = None,
        interface: tuple[str, int | None] | None = None,
        at: datetime | None = None,
    ) -> ContractAnswer:
        at = at or datetime.now(UTC)
        self._fresh()
        facts = self._pairs.get((requester_id, provider_id)) or self._load_pair(
            requester_id, provider_id
        )
        if facts.missing:
            return ContractAnswer(
                False, Reason.UNKNOWN_PARTNER, at, text=f"no partner {facts.missing}"
            )
        if facts.inactive:
            return ContractAnswer(
                False, Reason.PARTNER_INACTIVE, at, text=f"partner {facts.inactive} is not active"
            )
        matching = tuple(
            pair for pair in facts.contracts if _matches(pair[1], service_id, interface)
        )
        if service_id is not None and not matching:
            return self._unknown_service(service_id, at)
        if matching and all(s.state is LifecycleState.RETIRED for _, s in matching):
            return ContractAnswer(
                False, Reason.SERVICE_RETIRED, at, matching, "the service is retired"
            )
        return _decide_contracts(matching, at)

    def _unknown_service(self, service_id: str, at: datetime) -> ContractAnswer:
        with self.uow() as uow:
            service = uow.marketplace.get_service(service_id)
        if service is None:
            return ContractAnswer(
                False, Reason.UNKNOWN_SERVICE, at, text=f"no service {service_id}"
            )
        if service.state is LifecycleState.RETIRED:
            return ContractAnswer(False, Reason.SERVICE_RETIRED, at, text="the service is retired")
        return ContractAnswer(False, Reason.NO_CONTRACT, at, text="no contract for this service")

    def _load_pair(self, requester_id: str, provider_id: str) -> _PairFacts:
        with self.uow() as uow:
            missing = inactive = None
            for partner_id in (requester_id, provider_id):
                partner = uow.partners.get(partner_id)
                if partner is None:
                    missing = missing or partner_id
                elif partner.status is not PartnerStatus.ACTIVE:
                    inactive = inactive or partner_id
            contracts = tuple(uow.marketplace.contracts_between(requester_id, provider_id))
        facts = _PairFacts(missing, inactive, contracts)
        with self._lock:
            self._pairs[(requester_id, provider_id)] = facts
        return facts

    def validate_roaming_agreement(
        self, operator_id: str, provider_id: str, at: datetime | None = None
    ) -> AgreementAnswer:
        at = at or datetime.now(UTC)
        operator_key, provider_key = _keys(operator_id, provider_id)
        self._fresh()
        facts = self._agreements.get((operator_key, provider_key)) or self._load_agreements(
            operator_key, provider_key
        )

        def answer(
            reason: Reason, found: tuple[RoamingAgreement, ...] = (), text: str | None = None
        ) -> AgreementAnswer:
            return AgreementAnswer(
                reason is Reason.OK,
                reason,
                at,
                found,
                facts.operator_partner_id,
                facts.provider_partner_id,
                text,
            )

        if facts.operator_partner_id is None or facts.provider_partner_id is None:
            unknown = operator_id if facts.operator_partner_id is None else provider_id
            return answer(Reason.UNKNOWN_PARTNER, text=f"no partner owns {unknown}")
        if facts.inactive:
            return answer(Reason.PARTNER_INACTIVE, text=f"partner {facts.inactive} is not active")
        active = tuple(a for a in facts.agreements if a.status_at(at) is AgreementStatus.ACTIVE)
        if active:
            return answer(Reason.OK, active)
        if not facts.agreements:
            return answer(Reason.NO_CONTRACT, text="no roaming agreement")
        latest = max(facts.agreements, key=lambda a: a.validity.valid_from)
        return answer(_BY_STATUS[latest.status_at(at)], facts.agreements)

    def _load_agreements(self, operator_key: str, provider_key: str) -> _AgreementFacts:
        with self.uow() as uow:
            operator_owner = uow.partners.owner_of_identifier("operator", operator_key)
            provider_owner = uow.partners.owner_of_identifier("provider", provider_key)
            inactive = None
            for owner in (operator_owner, provider_owner):
                partner = uow.partners.get(owner) if owner else None
                if partner is not None and partner.status is not PartnerStatus.ACTIVE:
                    inactive = inactive or owner
            agreements = tuple(uow.marketplace.agreements_between(operator_key, provider_key))
        facts = _AgreementFacts(operator_owner, provider_owner, inactive, agreements)
        with self._lock:
            self._agreements[(operator_key, provider_key)] = facts
        return facts


def _keys(operator_id: str, provider_id: str) -> tuple[str, str]:
    return (
        parse_identifier(OperatorId.parse, operator_id, "operatorId").key,
        parse_identifier(ProviderId.parse, provider_id, "providerId").key,
    )


def _matches(
    service: Service, service_id: str | None, interface: tuple[str, int | None] | None
) -> bool:
    if service_id is not None:
        return service.service_id == service_id
    if interface is not None:
        family, version = interface
        wanted = InterfaceRef(
            family, version if version is not None else service.data.interface.version
        )
        return service.data.interface == wanted
    return True


def _decide_contracts(
    matching: tuple[tuple[ServiceContract, Service], ...], at: datetime
) -> ContractAnswer:
    active = tuple(
        p
        for p in matching
        if p[0].status_at(at) is AgreementStatus.ACTIVE and p[1].state is not LifecycleState.RETIRED
    )
    if active:
        return ContractAnswer(True, Reason.OK, at, active)
    if not matching:
        return ContractAnswer(
            False, Reason.NO_CONTRACT, at, text="no contract between these partners"
        )
    latest = max(matching, key=lambda p: p[0].accepted_at)
    return ContractAnswer(
        False, _BY_STATUS.get(latest[0].status_at(at), Reason.NO_CONTRACT), at, matching
    )
