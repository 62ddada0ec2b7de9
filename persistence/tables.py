"""Tables of gembus (SQLAlchemy 2.x declarative, typed). Alembic migrations mirror this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class PartnerRow(Base):
    __tablename__ = "partner"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64), unique=True)
    legal_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    contact_email: Mapped[str] = mapped_column(String(254))
    contact_telephone: Mapped[str | None] = mapped_column(String(32))
    contact_person: Mapped[str | None] = mapped_column(String(255))
    address_json: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(String(255))
    password_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    credentials_rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    roles: Mapped[list[PartnerRoleRow]] = relationship(
        cascade="all, delete-orphan", lazy="joined", order_by="PartnerRoleRow.position"
    )
    identifiers: Mapped[list[PartnerIdentifierRow]] = relationship(
        cascade="all, delete-orphan", lazy="joined", order_by="PartnerIdentifierRow.position"
    )


class PartnerRoleRow(Base):
    __tablename__ = "partner_role"

    partner_pk: Mapped[int] = mapped_column(
        ForeignKey("partner.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class PartnerIdentifierRow(Base):
    """An operator or provider ID: the wire form as registered and the normalised key."""

    __tablename__ = "partner_identifier"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_partner_identifier_kind_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_pk: Mapped[int] = mapped_column(
        ForeignKey("partner.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    wire: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)


class WsseNonceRow(Base):
    """Seen UsernameToken nonces; the primary key is what rejects a replay on any worker."""

    __tablename__ = "wsse_nonce"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ServiceRow(Base):
    """A service a provider registered in the catalogue."""

    __tablename__ = "service"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64), unique=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str] = mapped_column(String(32), index=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OfferingRow(Base):
    __tablename__ = "offering"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offering_id: Mapped[str] = mapped_column(String(64), unique=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.service_id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    terms_json: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ServiceContractRow(Base):
    """A bilateral contract: the offering's terms are copied so later changes cannot alter it."""

    __tablename__ = "service_contract"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[str] = mapped_column(String(64), unique=True)
    offering_id: Mapped[str] = mapped_column(ForeignKey("offering.offering_id"), index=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.service_id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    requester_id: Mapped[str] = mapped_column(String(64), index=True)
    terms_json: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    accepted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    requester_reference: Mapped[str | None] = mapped_column(String(64))
    terminated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    terminated_by: Mapped[str | None] = mapped_column(String(64))
    termination_reason: Mapped[str | None] = mapped_column(Text)


class RoamingAgreementRow(Base):
    __tablename__ = "roaming_agreement"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(64), unique=True)
    operator_wire: Mapped[str] = mapped_column(String(16))
    operator_key: Mapped[str] = mapped_column(String(16), index=True)
    operator_partner_id: Mapped[str] = mapped_column(String(64), index=True)
    provider_wire: Mapped[str] = mapped_column(String(16))
    provider_key: Mapped[str] = mapped_column(String(16), index=True)
    provider_partner_id: Mapped[str] = mapped_column(String(64), index=True)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    terminated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    terminated_by: Mapped[str | None] = mapped_column(String(64))
    termination_reason: Mapped[str | None] = mapped_column(Text)


class UsageCallRow(Base):
    """One call made under a service contract (the gateway's transaction log will feed this)."""

    __tablename__ = "usage_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    operation: Mapped[str] = mapped_column(String(64))
    fault_code: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float | None] = mapped_column(Float)  # None while the call is pending
    over_quota: Mapped[bool] = mapped_column(Boolean, default=False)


class ChangeCounterRow(Base):
    """Monotonic counters other processes poll to drop caches (e.g. SRV 1967's) after a change."""

    __tablename__ = "change_counter"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class GatewayCallRow(Base):
    """The gateway's transaction log: one row per routed call, written before the reply."""

    __tablename__ = "gateway_call"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    message_id: Mapped[str] = mapped_column(String(64), index=True)
    requester_id: Mapped[str | None] = mapped_column(String(64), index=True)
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    service_id: Mapped[str | None] = mapped_column(String(64), index=True)
    family: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str | None] = mapped_column(String(64))
    contract_id: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(8))  # ok, fault, or pending (not finished yet)
    fault_code: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    bytes_in: Mapped[int] = mapped_column(Integer)
    bytes_out: Mapped[int | None] = mapped_column(Integer)


class RoutePolicyRow(Base):
    """The operator's policy for one route: provider timeout, outbound validation mode."""

    __tablename__ = "route_policy"

    service_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeout_ms: Mapped[int | None] = mapped_column(Integer)
    response_validation: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class SubscriptionRow(Base):
    """A partner's subscription to a topic; ``identity`` makes Subscribe idempotent."""

    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("partner_id", "identity", name="uq_subscription_partner_identity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(64), unique=True)
    partner_id: Mapped[str] = mapped_column(String(64), index=True)
    topic: Mapped[str] = mapped_column(String(32), index=True)
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    filter_json: Mapped[str | None] = mapped_column(Text)
    #: sha256 of (topic, endpoint URL, canonical filter).
    identity: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


#: 64-bit ids on PostgreSQL; SQLite needs INTEGER PRIMARY KEY for its rowid alias.
OutboxId = BigInteger().with_variant(Integer(), "sqlite")
_PENDING = text("status = 'pending'")


class OutboxRow(Base):
    """The transactional outbox: one Notify delivery per event and subscription.

    Dead letters stay here with ``status = 'dead'`` (see persistence/outbox.py for why); the
    partial index keeps the relay's claim query on pending rows only.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "id", postgresql_where=_PENDING, sqlite_where=_PENDING),
        Index("ix_outbox_status_delivered_at", "status", "delivered_at"),
    )

    id: Mapped[int] = mapped_column(OutboxId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(32))
    subscription_id: Mapped[str] = mapped_column(String(64), index=True)
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
