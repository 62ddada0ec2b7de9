"""Interfaces the domain needs from the outside; persistence and gembus implement them.

The domain never imports SQLAlchemy: repositories return domain objects and the unit of work
rolls back unless told to commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from domain.marketplace.model import (
    LifecycleState,
    Offering,
    OfferingStatus,
    RoamingAgreement,
    Service,
    ServiceCategory,
    ServiceContract,
    UsageCall,
)
from domain.partners import Partner, PartnerData, PartnerStatus, Role
from domain.pubsub import (
    Delivery,
    DeliveryStatus,
    OutboxEntry,
    Settlement,
    Subscription,
    SubscriptionStatus,
    Topic,
)
from domain.route_policy import RoutePolicy


class PartnerRepository(Protocol):
    def add(self, partner: Partner, password_hash: str, sealed_password: str) -> None: ...

    def get(self, partner_id: str) -> Partner | None: ...

    def list(
        self, *, role: Role | None, status: PartnerStatus | None, offset: int, limit: int
    ) -> tuple[list[Partner], int]: ...

    def owner_of_identifier(self, kind: str, key: str) -> str | None:
        """The partner that owns the operator/provider ID with this normalised key."""
        ...

    def update(self, partner: Partner) -> None: ...

    def set_credentials(
        self, partner_id: str, password_hash: str, sealed_password: str
    ) -> None: ...


class MarketplaceRepository(Protocol):
    """Services, offerings, contracts, roaming agreements, usage (persistence/marketplace.py)."""

    def add_service(self, service: Service) -> None: ...
    def update_service(self, service: Service) -> None: ...
    def get_service(self, service_id: str) -> Service | None: ...
    def browse(
        self,
        *,
        category: ServiceCategory | None,
        family: str | None,
        version: int | None,
        provider_id: str | None,
        text: str | None,
        states: Sequence[LifecycleState],
        page: tuple[int, int],
    ) -> tuple[list[Service], int]: ...
    def add_offering(self, offering: Offering) -> None: ...
    def update_offering(self, offering: Offering) -> None: ...
    def get_offering(self, offering_id: str) -> Offering | None: ...
    def list_offerings(
        self,
        *,
        service_id: str | None,
        provider_id: str | None,
        status: OfferingStatus | None,
        page: tuple[int, int],
    ) -> tuple[list[Offering], int]: ...
    def open_offerings_of(self, service_id: str) -> list[Offering]: ...
    def add_contract(self, contract: ServiceContract) -> None: ...
    def update_contract(self, contract: ServiceContract) -> None: ...
    def get_contract(self, contract_id: str) -> ServiceContract | None: ...
    def contracts_of(
        self,
        partner_id: str,
        *,
        as_requester: bool,
        as_provider: bool,
        service_id: str | None,
        counterpart: str | None,
    ) -> list[ServiceContract]: ...
    def contracts_between(
        self, requester_id: str, provider_id: str
    ) -> list[tuple[ServiceContract, Service]]: ...
    def active_contracts_of_service(self, service_id: str) -> list[ServiceContract]: ...
    def add_agreement(self, agreement: RoamingAgreement) -> None: ...
    def update_agreement(self, agreement: RoamingAgreement) -> None: ...
    def get_agreement(self, agreement_id: str) -> RoamingAgreement | None: ...
    def agreements_between(
        self, operator_key: str, provider_key: str
    ) -> list[RoamingAgreement]: ...
    def agreements_of(
        self, partner_id: str | None, operator_key: str | None, provider_key: str | None
    ) -> list[RoamingAgreement]: ...
    def record_call(
        self,
        contract_id: str,
        at: datetime,
        operation: str,
        fault_code: str | None,
        latency_ms: float,
        over_quota: bool = False,
    ) -> None: ...
    def count_calls(self, contract_id: str, start: datetime, end: datetime) -> int: ...
    def calls(self, contract_id: str, start: datetime, end: datetime) -> list[UsageCall]: ...
    def bump(self, name: str) -> None: ...
    def counter(self, name: str) -> int: ...
    def set_route_policy(self, policy: RoutePolicy, actor: str, at: datetime) -> None: ...
    def route_policies(self) -> dict[str, RoutePolicy]: ...


class OutboxRepository(Protocol):
    """Subscriptions and the transactional outbox (persistence/outbox.py).

    ``enqueue`` writes in the caller's transaction. ``claim`` locks pending, due rows until the
    unit of work ends (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent relays never
    get the same row); ``settle`` records the outcome in that same transaction.
    """

    def add_subscription(self, subscription: Subscription, filter_key: str) -> None: ...
    def get_subscription(self, subscription_id: str) -> Subscription | None: ...
    def find_subscription(
        self, partner_id: str, topic: Topic, endpoint_url: str, filter_key: str
    ) -> Subscription | None: ...
    def set_subscription_status(self, subscription_id: str, status: SubscriptionStatus) -> None: ...
    def delete_subscription(self, subscription_id: str) -> None: ...
    def count_subscriptions(self, partner_id: str) -> int: ...
    def subscriptions_of(
        self, partner_id: str, topic: Topic | None, page: tuple[int, int]
    ) -> tuple[list[Subscription], int]: ...
    def active_subscriptions(self, topic: Topic) -> list[Subscription]:
        """Active subscriptions of active partners."""
        ...

    def enqueue(self, deliveries: Sequence[Delivery]) -> None: ...
    def claim(self, limit: int, now: datetime) -> list[OutboxEntry]: ...
    def settle(self, settlements: Sequence[Settlement]) -> None: ...
    def entries(
        self, status: DeliveryStatus | None, page: tuple[int, int]
    ) -> tuple[list[OutboxEntry], int]: ...
    def redrive(self, entry_id: int | None, now: datetime) -> int:
        """Make a dead (or waiting) row, or every dead row when None, pending again."""
        ...

    def purge_delivered(self, before: datetime) -> int: ...


class PasswordVault(Protocol):
    """Hashes passwords for verification and seals them for PasswordDigest checks."""

    def hash(self, password: str) -> str: ...

    def seal(self, password: str) -> str: ...

    def open(self, sealed: str) -> str: ...


class UnitOfWork(Protocol):
    @property
    def partners(self) -> PartnerRepository: ...

    @property
    def marketplace(self) -> MarketplaceRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


__all__ = [
    "OutboxRepository",
    "PartnerData",
    "PartnerRepository",
    "PasswordVault",
    "Settlement",
    "UnitOfWork",
]
