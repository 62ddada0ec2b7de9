"""Interfaces the domain needs from the outside; persistence and gembus implement them.

The domain never imports SQLAlchemy: repositories return domain objects and the unit of work
rolls back unless told to commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from domain.charging.master_data import PullState
from domain.charging.model import EvseRecord, EvseStatus, StoredEvse
from domain.charging.pull import PullKind, PullOutcome, PullRun
from domain.charging.search import Match, SearchQuery
from domain.clearing.financial import (
    DayTotal,
    GrossLine,
    Period,
    PlanFilter,
    PricePlan,
    Statement,
    StatementItem,
    Window,
)
from domain.clearing.sdr import (
    CheckQuery,
    Decline,
    DeliveryMode,
    DeliverySetting,
    PendingQuery,
    SdrEntry,
    SdrStatus,
    SdrVersion,
    StoredSdr,
)
from domain.gateway_calls import CallLogReader
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

if TYPE_CHECKING:  # the clearing-house authorization models import this module themselves
    from domain.charging.reservation import Reservation
    from domain.clearing.authorization import AuthorizationSettings, Decision, DecisionFilter
    from domain.clearing.customer_contracts import (
        ContractStatus,
        Digest,
        StagedChunk,
        StoredContract,
        UploadOutcome,
        UploadRecord,
        Upsert,
    )


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


class SdrRepository(Protocol):
    """Service detail records, their versions and the EVSPs' delivery settings
    (persistence/sdr.py). Writes join the caller's transaction; ``lock=True`` reads lock the
    rows until it ends (``FOR UPDATE`` on PostgreSQL), so concurrent requests decide in turn.
    """

    def current(self, sdr_ids: Sequence[str], *, lock: bool) -> dict[str, StoredSdr]: ...
    def add(self, versions: Sequence[SdrVersion], forwarded: Collection[str]) -> set[str]:
        """Insert first versions; returns the sdrIds inserted (others exist already)."""
        ...

    def revise(self, version: SdrVersion, previous: int, forwarded: bool) -> bool: ...
    def reject(self, sdr_id: str, version: int, content_hash: str, at: datetime) -> bool: ...
    def addressed_to(
        self, provider_partner_id: str, provider_key: str, sdr_ids: Sequence[str]
    ) -> dict[str, StoredSdr]:
        """The records among ``sdr_ids`` routed to this EVSP provider ID, locked."""
        ...

    def decide(
        self, decisions: Sequence[tuple[str, int, SdrStatus, Decline | None]], at: datetime
    ) -> None: ...
    def check(self, query: CheckQuery) -> tuple[list[SdrEntry], int]: ...
    def pending(self, query: PendingQuery) -> tuple[list[SdrEntry], int]: ...
    def oldest_unforwarded(
        self, provider_partner_id: str, before: datetime
    ) -> tuple[str, datetime] | None:
        """(provider key, receivedAt) of the oldest pending record not pushed in its version."""
        ...

    def count_unforwarded(
        self, provider_partner_id: str, provider_key: str, period: tuple[datetime, datetime]
    ) -> int: ...
    def unforwarded(
        self,
        provider_partner_id: str,
        provider_key: str,
        period: tuple[datetime, datetime],
        limit: int,
    ) -> list[SdrEntry]:
        """Pending records not yet pushed in their version, locked (SKIP LOCKED)."""
        ...

    def mark_forwarded(self, entries: Sequence[SdrEntry]) -> None: ...
    def delivery_modes(self, partner_ids: Collection[str]) -> dict[str, DeliveryMode]: ...
    def set_delivery(self, setting: DeliverySetting) -> None: ...
    def delivery_settings(self) -> list[DeliverySetting]: ...


class ClearingRepository(Protocol):
    """Price plans and clearing statements (persistence/clearing.py)."""

    def add_plan(self, plan: PricePlan) -> None: ...
    def update_plan(self, plan: PricePlan) -> None: ...
    def end_plan(self, plan_id: str, window: Window, at: datetime) -> None: ...
    def get_plan(self, plan_id: str) -> PricePlan | None: ...
    def plans_of_pair(
        self, operator_key: str, provider_key: str, service_type: str, currency: str
    ) -> list[PricePlan]:
        """Every plan of the pair, locked until the transaction ends (placement decides)."""
        ...

    def list_plans(
        self,
        visible: tuple[set[str], set[str]] | None,
        plan_filter: PlanFilter,
        page: tuple[int, int],
    ) -> tuple[list[PricePlan], int]:
        """``visible``: (operator keys, provider keys) the caller may see; None = all."""
        ...

    def mark_plans_used(self, plan_ids: Collection[str]) -> None: ...
    def price_day(self, day: Period, cut_off: datetime) -> tuple[list[DayTotal], int]:
        """The day's approved SDRs priced and summed per (debtor, creditor, currency, plan),
        and the count of those no plan prices."""
        ...

    def add_statement(self, statement: Statement) -> None: ...
    def issued_statement(self, period: Period) -> Statement | None: ...
    def get_statement(self, statement_id: str) -> Statement | None: ...
    def purge_provisional(self, now: datetime) -> int: ...
    def items(
        self, statement: Statement, line: GrossLine, offset: int, limit: int
    ) -> list[StatementItem]: ...


class CustomerContractRepository(Protocol):
    """EVSPs' stored customer contracts and their uploads (persistence/clearing_authorization.py).

    Contracts are keyed on the normalised contract ID; tokens are found by digest only.
    """

    def lock_provider(self, provider_key: str, partner_id: str) -> None:
        """Hold the provider's upload lock until the transaction ends (uploads one at a time);
        Client.UploadInProgress when it cannot be had in reasonable time."""
        ...

    def find_upload(
        self, provider_key: str, upload_id: str, chunk_index: int
    ) -> UploadOutcome | None: ...
    def discard_stale_chunks(self, provider_key: str, before: datetime) -> int: ...
    def staged_chunks(self, provider_key: str, upload_id: str) -> list[StagedChunk]: ...
    def close_chunks(self, provider_key: str, upload_id: str) -> None: ...
    def add_upload(self, record: UploadRecord) -> None: ...
    def content_hashes(self, provider_key: str, keys: Sequence[str]) -> dict[str, str]: ...
    def token_owners(self, provider_key: str, digests: Collection[Digest]) -> dict[Digest, str]: ...
    def upsert(
        self,
        provider_id: str,
        provider_key: str,
        partner_id: str,
        writes: Sequence[Upsert],
        upload_id: str,
        at: datetime,
    ) -> None: ...
    def delete(self, provider_key: str, keys: Sequence[str]) -> int: ...
    def delete_all_except(self, provider_key: str, keys: Sequence[str]) -> int: ...
    def count(self, provider_key: str) -> int: ...
    def get(self, key: str) -> StoredContract | None: ...
    def by_tokens(self, digests: Collection[Digest]) -> list[StoredContract]: ...
    def search(
        self,
        provider_keys: Sequence[str] | None,
        key: str | None,
        status: ContractStatus | None,
        updated_since: datetime | None,
        at: datetime,
        page: tuple[int, int],
    ) -> tuple[list[StoredContract], int]: ...


class AuthorizationRepository(Protocol):
    """Per-EVSP authorization settings and the decisions audit
    (persistence/clearing_authorization.py)."""

    def get_settings(self, partner_id: str) -> AuthorizationSettings | None: ...
    def put_settings(self, settings: AuthorizationSettings) -> None: ...
    def delete_settings(self, partner_id: str) -> None: ...
    def all_settings(self) -> list[AuthorizationSettings]: ...
    def decisions(
        self, query: DecisionFilter, page: tuple[int, int]
    ) -> tuple[list[Decision], int]: ...


class EvseRepository(Protocol):
    """EVSE master data, live status, upload replays and per-operator pull state
    (persistence/evse.py). Writes join the caller's transaction."""

    def lock_operator(self, operator_key: str, operator_wire: str, now: datetime) -> None:
        """Serialise the writers of one operator's data until the transaction ends."""
        ...

    def last_updates(self, evse_keys: Sequence[str]) -> dict[str, datetime]: ...
    def upsert(self, records: Sequence[EvseRecord], source: str, now: datetime) -> None: ...
    def delete(self, evse_keys: Collection[str]) -> int: ...
    def delete_operator_except(self, operator_key: str, keep: Collection[str]) -> int: ...
    def get(self, evse_keys: Sequence[str]) -> dict[str, StoredEvse]: ...
    def statuses(self, evse_keys: Sequence[str]) -> dict[str, EvseStatus | None]:
        """The stored (not yet TTL-evaluated) status of each known EVSE; None: never sent."""
        ...

    def reservable(self, evse_keys: Sequence[str]) -> dict[str, bool]:
        """Whether each known EVSE's master data offers ReserveEvse; unknown keys are absent."""
        ...

    def set_statuses(self, statuses: Sequence[tuple[str, EvseStatus]], now: datetime) -> None: ...
    def search(self, query: SearchQuery, now: datetime) -> tuple[list[Match], int]: ...
    def upload_replay(self, partner_id: str, upload_key: str) -> tuple[str, str] | None:
        """(content hash, stored result) of an earlier upload with this key."""
        ...

    def record_upload(
        self, partner_id: str, upload_key: str, content_hash: str, result: str, now: datetime
    ) -> None: ...
    def pull_state(self, operator_key: str) -> PullState | None: ...
    def record_pull(self, state: PullState) -> None: ...
    def record_pull_run(self, run: PullRun) -> int:
        """Store one pull run (in the caller's transaction); returns its ID."""
        ...

    def pull_runs(
        self, operator_key: str | None, page: tuple[int, int]
    ) -> tuple[list[PullRun], int]:
        """Pull runs, newest first, of one operator or of all; and how many there are."""
        ...

    def last_pull_run(
        self, operator_key: str, kinds: Collection[PullKind], outcome: PullOutcome | None
    ) -> PullRun | None:
        """The operator's latest run of one of ``kinds`` (with that ``outcome``, if given)."""
        ...


class Leases(Protocol):
    """Who runs a singleton job (a scheduled pull) across every process (persistence/leases.py).

    ``hold(name)`` yields True when this caller got the lease, False when another holds it;
    the lease ends with the block, or with the holder's process.
    """

    def hold(self, name: str) -> AbstractContextManager[bool]: ...


class ReservationRepository(Protocol):
    """Every ReserveEvse gembus recorded, with its outcome (persistence/reservations.py).
    Writes join the caller's transaction."""

    def add(self, reservation: Reservation) -> int | None:
        """Insert; None (nothing written) when a live record holds its idempotency key."""
        ...

    def update(self, reservation: Reservation) -> None: ...
    def cancel(self, reservation: Reservation) -> bool:
        """Mark a held reservation cancelled; False when it was not held any more."""
        ...

    def by_partner_reference(
        self, provider_key: str, partner_reservation_id: str | None
    ) -> Reservation | None:
        """The pending, held or cancelled record of this idempotency key, if any."""
        ...

    def by_reservation_id(self, operator_key: str, reservation_id: str) -> Reservation | None:
        """The latest held or cancelled reservation the operator's CLM issued with this ID."""
        ...

    def list(
        self, partner_id: str | None, page: tuple[int, int]
    ) -> tuple[list[Reservation], int]:
        """Newest first, optionally of one EVSP partner; (rows, total)."""
        ...


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

    @property
    def sdrs(self) -> SdrRepository: ...

    @property
    def clearing(self) -> ClearingRepository: ...

    @property
    def customer_contracts(self) -> CustomerContractRepository: ...

    @property
    def authorizations(self) -> AuthorizationRepository: ...

    @property
    def evses(self) -> EvseRepository: ...

    @property
    def reservations(self) -> ReservationRepository: ...

    @property
    def gateway_calls(self) -> CallLogReader: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


__all__ = [
    "AuthorizationRepository",
    "CustomerContractRepository",
    "EvseRepository",
    "Leases",
    "OutboxRepository",
    "PartnerData",
    "PartnerRepository",
    "PasswordVault",
    "ReservationRepository",
    "SdrRepository",
    "Settlement",
    "UnitOfWork",
]
