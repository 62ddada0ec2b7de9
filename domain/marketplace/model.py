"""Marketplace records: services, offerings, service contracts, roaming agreements, usage.

Statuses that depend on time (a contract that has expired, an agreement not yet valid) are
derived at the moment of the question from stored facts (validity window, termination), so no
sweeper job is needed and SRV 1967 answers "at time t" questions exactly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain.identifiers import OperatorId, ProviderId


class ServiceCategory(enum.StrEnum):
    CORE = "Core"
    CLEARING_HOUSE = "ClearingHouse"
    BASIC_END_USER = "BasicEndUser"
    VALUE_ADDED = "ValueAdded"


class LifecycleState(enum.StrEnum):
    """draft -> published -> deprecated -> retired, one step at a time."""

    DRAFT = "draft"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"
    RETIRED = "retired"

    def next_states(self) -> tuple[LifecycleState, ...]:
        order = list(LifecycleState)
        index = order.index(self)
        return tuple(order[index + 1 : index + 2])


class OfferingStatus(enum.StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class AgreementStatus(enum.StrEnum):
    """Status of a service contract or roaming agreement at a point in time."""

    PENDING = "pending"  # valid from a future date
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class InterfaceRef:
    """The WSDL family and major version a service implements (urn:gembus:<family>:v<N>)."""

    family: str
    version: int


@dataclass(frozen=True)
class Validity:
    """Half-open window [valid_from, valid_to); no valid_to means open-ended."""

    valid_from: datetime
    valid_to: datetime | None = None

    def contains(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)

    def overlaps(self, other: Validity) -> bool:
        ends_after_other_starts = self.valid_to is None or self.valid_to > other.valid_from
        starts_before_other_ends = other.valid_to is None or self.valid_from < other.valid_to
        return ends_after_other_starts and starts_before_other_ends


def status_at(validity: Validity, terminated_at: datetime | None, at: datetime) -> AgreementStatus:
    """The one rule both contracts and agreements follow."""
    if terminated_at is not None and terminated_at <= at:
        return AgreementStatus.TERMINATED
    if at < validity.valid_from:
        return AgreementStatus.PENDING
    if validity.valid_to is not None and at >= validity.valid_to:
        return AgreementStatus.EXPIRED
    return AgreementStatus.ACTIVE


@dataclass(frozen=True)
class ServiceData:
    name: str
    category: ServiceCategory
    interface: InterfaceRef
    endpoint_url: str
    description: str | None = None


@dataclass
class Service:
    service_id: str
    provider_id: str  # partner ID of the provider
    state: LifecycleState
    data: ServiceData
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Quota:
    per_day: int | None = None
    per_month: int | None = None
    overrun_price: Decimal | None = None  # calls over quota are billed at this price, else refused


@dataclass(frozen=True)
class Terms:
    currency: str
    price_per_call: Decimal | None = None
    monthly_fee: Decimal | None = None
    quota: Quota | None = None


@dataclass
class Offering:
    offering_id: str
    service_id: str
    provider_id: str
    name: str
    terms: Terms
    validity: Validity
    status: OfferingStatus
    created_at: datetime
    description: str | None = None

    def status_at(self, at: datetime) -> OfferingStatus:
        if (
            self.status is OfferingStatus.OPEN
            and self.validity.valid_to
            and at >= self.validity.valid_to
        ):
            return OfferingStatus.EXPIRED
        return self.status


@dataclass
class ServiceContract:
    contract_id: str
    offering_id: str
    service_id: str
    provider_id: str
    requester_id: str
    terms: Terms
    validity: Validity
    accepted_at: datetime
    requester_reference: str | None = None
    terminated_at: datetime | None = None
    terminated_by: str | None = None
    termination_reason: str | None = None

    def status_at(self, at: datetime) -> AgreementStatus:
        return status_at(self.validity, self.terminated_at, at)

    def party(self, partner_id: str) -> bool:
        return partner_id in (self.provider_id, self.requester_id)


@dataclass
class RoamingAgreement:
    agreement_id: str
    operator_id: OperatorId
    operator_partner_id: str
    provider_id: ProviderId
    provider_partner_id: str
    validity: Validity
    created_at: datetime
    created_by: str
    terminated_at: datetime | None = None
    terminated_by: str | None = None
    termination_reason: str | None = None

    def status_at(self, at: datetime) -> AgreementStatus:
        return status_at(self.validity, self.terminated_at, at)

    def party(self, partner_id: str) -> bool:
        return partner_id in (self.operator_partner_id, self.provider_partner_id)


@dataclass(frozen=True)
class UsageCall:
    """One call made under a service contract, as metered."""

    at: datetime
    fault_code: str | None
    latency_ms: float | None  # None while a routed call is still pending
    over_quota: bool = False
