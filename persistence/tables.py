"""Tables of gembus (SQLAlchemy 2.x declarative, typed). Alembic migrations mirror this file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from domain.charging.model import PLUGS


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


class ExactDecimal(TypeDecorator[Decimal]):
    """Money and prices, exact on both databases: NUMERIC on PostgreSQL (SQL can sum it), the
    decimal text on SQLite (whose NUMERIC goes through float)."""

    impl = Numeric(18, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, 6, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


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
    #: notify (a Notify envelope) or sdr_receiver (a ReceiveSdrs batch); picks the SOAPAction
    #: and how the answer is read (bus/delivery.py). Added by migration 0007.
    kind: Mapped[str] = mapped_column(String(16), default="notify", server_default="notify")


class PricePlanRow(Base):
    """A bilateral wholesale price plan (financial clearing); keys are the normalised IDs."""

    __tablename__ = "price_plan"
    __table_args__ = (
        Index("ix_price_plan_pair", "operator_key", "provider_key", "service_type", "currency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[str] = mapped_column(String(32))
    operator_key: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(32))
    provider_key: Mapped[str] = mapped_column(String(32))
    service_type: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    per_kwh: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    per_minute: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    per_session: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    contract_reference: Mapped[str | None] = mapped_column(String(64))
    set_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_in_statement: Mapped[bool] = mapped_column(Boolean, default=False)


class ClearingStatementRow(Base):
    """A clearing run: issued (one per period, immutable) or provisional (kept 24 hours)."""

    __tablename__ = "clearing_statement"
    __table_args__ = (
        Index(
            "ix_clearing_statement_issued_period",
            "period_start",
            "period_end",
            unique=True,
            postgresql_where=text("status = 'issued'"),
            sqlite_where=text("status = 'issued'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[str] = mapped_column(String(64), unique=True)
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))
    cut_off: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sdr_count: Mapped[int] = mapped_column(Integer)
    unpriced_count: Mapped[int] = mapped_column(Integer)


class ClearingLineRow(Base):
    """One gross line of a statement: what ``debtor`` owes ``creditor`` in ``currency``."""

    __tablename__ = "clearing_line"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    debtor: Mapped[str] = mapped_column(String(64))
    creditor: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(ExactDecimal)
    sdr_count: Mapped[int] = mapped_column(Integer)


#: Records waiting for their EVSP's decision (GetPendingSdrs, push and batch forwarding).
_SDR_PENDING = text("status IN ('accepted', 'revised')")


class SdrRow(Base):
    """A service detail record's current state: the latest version, routing and lifecycle.

    Narrow on purpose (the documents live in ``sdr_version``): financial clearing aggregates
    ``total_cost`` per (creditor operator, debtor EVSP, currency) over millions of rows, and a
    row without its XML keeps that a scan of a few hundred bytes per record.
    """

    __tablename__ = "sdr"
    __table_args__ = (
        Index(
            "ix_sdr_pending",
            "provider_partner_id",
            "received_at",
            "sdr_id",
            postgresql_where=_SDR_PENDING,
            sqlite_where=_SDR_PENDING,
        ),
        Index("ix_sdr_operator", "operator_partner_id", "status_changed_at", "sdr_id"),
        # financial clearing prices approved records day by day on session start; the index
        # comes with its tables in migration 0008
        Index("ix_sdr_clearing_start", "status", "session_start"),
    )

    id: Mapped[int] = mapped_column(OutboxId, primary_key=True, autoincrement=True)
    sdr_id: Mapped[str] = mapped_column(String(36), unique=True)
    #: The creditor: the submitting operator (partner, normalised ID key, wire form).
    operator_partner_id: Mapped[str] = mapped_column(String(64))
    operator_key: Mapped[str] = mapped_column(String(8))
    operator_wire: Mapped[str] = mapped_column(String(16))
    #: The debtor: the home EVSP that owns the contract ID's provider prefix.
    provider_partner_id: Mapped[str] = mapped_column(String(64))
    provider_key: Mapped[str] = mapped_column(String(8))
    provider_wire: Mapped[str] = mapped_column(String(16))
    evse_id: Mapped[str] = mapped_column(String(48))
    contract_id: Mapped[str] = mapped_column(String(24))
    contract_key: Mapped[str] = mapped_column(String(16))
    service_type: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of the latest submission, status included: tells a retry from a change.
    content_hash: Mapped[str] = mapped_column(String(64))
    session_start: Mapped[datetime] = mapped_column(UtcDateTime)
    session_end: Mapped[datetime] = mapped_column(UtcDateTime)
    #: Net amount (totalCost, else the sum of the period costs) in ``currency``.
    total_cost: Mapped[Decimal] = mapped_column(ExactDecimal)
    currency: Mapped[str] = mapped_column(String(3))
    energy_kwh: Mapped[Decimal] = mapped_column(ExactDecimal)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: The version last queued for push delivery (None: never pushed; pull only).
    forwarded_version: Mapped[int | None] = mapped_column(Integer)
    decline_code: Mapped[str | None] = mapped_column(String(32))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    declined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SdrVersionRow(Base):
    """Every stored version of an SDR: the ``rm:sdr`` document as the operator sent it."""

    __tablename__ = "sdr_version"

    sdr_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    document: Mapped[str] = mapped_column(Text)


class SdrDeliveryRow(Base):
    """An EVSP's choice of SDR delivery: push, daily/weekly/monthly batches, or pull."""

    __tablename__ = "sdr_delivery"

    partner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


# --------------------------------------------------------------------------- clearing house:
# roaming authorization and customer contracts (migration 0006)


class CustomerContractRow(Base):
    """An EVSP's stored customer contract; the whole record (tokens, services) as JSON in its
    wire form, the columns authorization and read-back filter on beside it."""

    __tablename__ = "customer_contract"
    __table_args__ = (Index("ix_customer_contract_provider_key", "provider_key", "contract_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_key: Mapped[str] = mapped_column(String(16), unique=True)
    contract_wire: Mapped[str] = mapped_column(String(18))
    provider_key: Mapped[str] = mapped_column(String(8))
    provider_wire: Mapped[str] = mapped_column(String(8))
    partner_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(8))
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    record_json: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    upload_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class CustomerContractTokenRow(Base):
    """A token digest of a stored contract (never a UID in clear): token-only look-ups and the
    TOKEN_CONFLICT rule (one token, one contract per provider) use it."""

    __tablename__ = "customer_contract_token"
    __table_args__ = (
        UniqueConstraint(
            "provider_key", "algorithm", "digest", name="uq_customer_contract_token_digest"
        ),
        Index("ix_customer_contract_token_digest", "digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_pk: Mapped[int] = mapped_column(
        ForeignKey("customer_contract.id", ondelete="CASCADE"), index=True
    )
    provider_key: Mapped[str] = mapped_column(String(8))
    algorithm: Mapped[str] = mapped_column(String(8))
    digest: Mapped[str] = mapped_column(String(64))


class CustomerContractUploadRow(Base):
    """One processed upload message: its answer (a repeat gets it again) and, for a chunk of
    a full upload still waiting for the others, the contracts it carried."""

    __tablename__ = "customer_contract_upload"
    __table_args__ = (
        UniqueConstraint(
            "provider_key", "upload_id", "chunk_index", name="uq_customer_contract_upload"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_key: Mapped[str] = mapped_column(String(8))
    upload_id: Mapped[str] = mapped_column(String(64))
    chunk_index: Mapped[int] = mapped_column(Integer)  # 0: not chunked
    chunk_count: Mapped[int | None] = mapped_column(Integer)
    partner_id: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    outcome_json: Mapped[str] = mapped_column(Text)
    staged_json: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CustomerContractProviderRow(Base):
    """One row per uploading provider ID: locking it serialises that provider's uploads."""

    __tablename__ = "customer_contract_provider"

    provider_key: Mapped[str] = mapped_column(String(8), primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    last_upload_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuthorizationSettingsRow(Base):
    """An EVSP's choice of how its customers are authorized; no row means the defaults."""

    __tablename__ = "authorization_settings"

    partner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    live_timeout_ms: Mapped[int] = mapped_column(Integer)
    fallback: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class AuthorizationDecisionRow(Base):
    """Every roaming authorization decision: who asked, what, why, how fast, from where.

    Written on the hot path in one statement with the caller's nonce
    (persistence/authorization_log.py); read back by both parties (GetAuthorizationDecisions)
    and by repeats with the same (operator, partnerSessionId) within ``valid_until``.
    """

    __tablename__ = "authorization_decision"
    __table_args__ = (
        Index("ix_authorization_decision_repeat", "operator_key", "partner_session_id"),
        Index("ix_authorization_decision_operator", "operator_partner_id", "decided_at"),
        Index("ix_authorization_decision_provider", "provider_partner_id", "decided_at"),
    )

    #: The gembus session ID answered to the operator (and quoted in its SDR): the key.
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    message_id: Mapped[str] = mapped_column(String(64))
    caller_partner_id: Mapped[str] = mapped_column(String(64))
    operator_partner_id: Mapped[str] = mapped_column(String(64))
    operator_wire: Mapped[str] = mapped_column(String(8))
    operator_key: Mapped[str | None] = mapped_column(String(8))
    evse_wire: Mapped[str] = mapped_column(String(41))
    evse_key: Mapped[str | None] = mapped_column(String(41))
    contract_wire: Mapped[str | None] = mapped_column(String(18))
    contract_key: Mapped[str | None] = mapped_column(String(16))
    token_json: Mapped[str | None] = mapped_column(Text)
    partner_session_id: Mapped[str | None] = mapped_column(String(64))
    provider_wire: Mapped[str | None] = mapped_column(String(8))
    provider_key: Mapped[str | None] = mapped_column(String(8))
    provider_partner_id: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(24))
    oicp_code: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stop_json: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    request_hash: Mapped[str] = mapped_column(String(64))
    repeats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# ------------------------------------------------------------------------------ charging

#: Row ids of the big tables: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
_BigId = BigInteger().with_variant(Integer, "sqlite")


#: What the proximity index carries besides the cell (persistence/evse.py's common filters).
_CELL_COVERS = (
    "latitude",
    "longitude",
    "static_status",
    "plug_mask",
    "connector_mask",
    "mode_mask",
    "ac_kw",
    "dc_kw",
    "max_kw",
    "battery_swap",
    "operator_key",
    "evse_key",
)


#: Plugs with a proximity index of their own: the DC fast-charging plugs, each on a minority of
#: EVSEs, asked for alone ("a CCS charger near me"). A partial copy of ix_evse_cell holding
#: only their EVSEs lets such a search read a quarter of the rows or fewer (Type 2 or Schuko,
#: on most EVSEs, would gain nothing). The bit is the plug's position in PLUGS.
INDEXED_PLUGS = (
    "TeslaConnector",
    "CCS Combo 2 Plug (Cable Attached)",
    "CCS Combo 1 Plug (Cable Attached)",
    "CHAdeMO",
)


def plug_index_name(bit: int) -> str:
    return f"ix_evse_cell_plug{bit}"


def plug_predicate(bit: int) -> str:
    """The partial index's WHERE, written as the prepared search writes it (the planner uses
    a partial index only when the query carries the same predicate)."""
    return f"plug_mask & {1 << bit} <> 0"


def _plug_indexes() -> list[Index]:
    bits = [PLUGS.index(plug) for plug in INDEXED_PLUGS]
    return [
        Index(
            plug_index_name(bit),
            "cell",
            postgresql_include=list(_CELL_COVERS),
            postgresql_where=text(plug_predicate(bit)),
            sqlite_where=text(plug_predicate(bit)),
        )
        for bit in bits
    ]


class EvseRow(Base):
    """The searchable projection of one EVSE record (domain/charging/model.py).

    Kept narrow on purpose (the record's XML lives in ``evse_document``): a proximity search
    reads a few thousand of these rows per query at 1,000,000 EVSEs. List criteria are bit
    masks over the contract's enumerations (``plug_mask & :wanted <> 0``) and ``cell`` is the
    0.1-degree grid cell that the proximity index uses (domain/charging/search.py).
    """

    __tablename__ = "evse"
    __table_args__ = (
        # Covering on PostgreSQL: a proximity search with technical/operator filters is an
        # index-only scan (rows arrive in upload order, scattered over the heap).
        Index("ix_evse_cell", "cell", postgresql_include=list(_CELL_COVERS)),
        Index("ix_evse_latitude", "latitude"),
        Index("ix_evse_operator", "operator_key", "evse_key"),
        Index("ix_evse_city", "country", "city_fold"),
        Index("ix_evse_postal_code", "postal_code"),
        *_plug_indexes(),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    evse_key: Mapped[str] = mapped_column(String(41), unique=True)
    evse_wire: Mapped[str] = mapped_column(String(41))
    operator_key: Mapped[str] = mapped_column(String(8))
    operator_wire: Mapped[str] = mapped_column(String(8))
    country: Mapped[str] = mapped_column(String(2))
    city_fold: Mapped[str] = mapped_column(String(64))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    street_fold: Mapped[str | None] = mapped_column(String(255))
    house_number: Mapped[str | None] = mapped_column(String(16))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    cell: Mapped[int] = mapped_column(Integer)
    plug_mask: Mapped[int] = mapped_column(Integer)
    connector_mask: Mapped[int] = mapped_column(Integer)
    mode_mask: Mapped[int] = mapped_column(Integer)
    auth_mask: Mapped[int] = mapped_column(Integer)
    payment_mask: Mapped[int] = mapped_column(Integer)
    service_mask: Mapped[int] = mapped_column(Integer)
    accessibility: Mapped[str] = mapped_column(String(32))
    ac_kw: Mapped[float | None] = mapped_column(Float)
    dc_kw: Mapped[float | None] = mapped_column(Float)
    max_kw: Mapped[float | None] = mapped_column(Float)
    battery_swap: Mapped[bool] = mapped_column(Boolean)
    reservable: Mapped[bool] = mapped_column(Boolean)
    renewable: Mapped[bool] = mapped_column(Boolean)
    dynamic_info: Mapped[bool] = mapped_column(Boolean)
    static_status: Mapped[str] = mapped_column(String(12))
    twentyfourseven: Mapped[bool] = mapped_column(Boolean)
    #: Opening hours, schedule and time zone as JSON, for "open now" (evaluated in Python).
    hours_json: Mapped[str | None] = mapped_column(Text)
    last_update: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(8))  # upload | pull


class EvseDocumentRow(Base):
    """The record as the operator sent it (canonical XML): what every read answers."""

    __tablename__ = "evse_document"

    evse_key: Mapped[str] = mapped_column(String(41), primary_key=True)
    document: Mapped[str] = mapped_column(Text)


class EvseStatusRow(Base):
    """Live status, apart from master data: it changes every few minutes and expires.

    The wire values are stored; a ttl in the past reads as unknown (evaluated at read time,
    so there is no sweeper)."""

    __tablename__ = "evse_status"

    evse_key: Mapped[str] = mapped_column(String(41), primary_key=True)
    major: Mapped[str] = mapped_column(String(16))
    minor: Mapped[str | None] = mapped_column(String(16))
    ttl: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class EvseOperatorRow(Base):
    """One row per operator ID with data: its lock (uploads and pulls apply one at a time)
    and the state of gembus's pulls from its CLM."""

    __tablename__ = "evse_operator"

    operator_key: Mapped[str] = mapped_column(String(8), primary_key=True)
    operator_wire: Mapped[str] = mapped_column(String(8))
    last_write_at: Mapped[datetime] = mapped_column(UtcDateTime)
    pull_last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pull_last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pull_last_full_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pull_last_error: Mapped[str | None] = mapped_column(Text)
    pull_records: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The CLM's asOf of the last successful master-data pull: the since of the next delta.
    pull_as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EvseUploadRow(Base):
    """The answer to each upload, kept for replays (key: uploadId + part, or content hash)."""

    __tablename__ = "evse_upload"
    __table_args__ = (UniqueConstraint("partner_id", "upload_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    upload_key: Mapped[str] = mapped_column(String(160))
    content_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime)


#: The reservation states that own an idempotency key (domain/charging/reservation.py).
_LIVE_RESERVATION = text("state IN ('pending', 'held', 'cancelled')")


class ReservationRow(Base):
    """Every ReserveEvse gembus routed for an EVSP, with its outcome and its cancellation.

    ``(provider_key, partner_reservation_id)`` is the EVSP's idempotency key; it is unique
    among the live records only (partial index), so refused and failed attempts stay on
    record without blocking a retry. ``message_id`` joins the request's ``gateway_call`` row.
    """

    __tablename__ = "reservation"
    __table_args__ = (
        Index(
            "ux_reservation_partner_reference",
            "provider_key",
            "partner_reservation_id",
            unique=True,
            postgresql_where=_LIVE_RESERVATION,
            sqlite_where=_LIVE_RESERVATION,
        ),
        Index("ix_reservation_clm_id", "operator_key", "reservation_id"),
        Index("ix_reservation_partner", "partner_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(String(64))
    provider_id: Mapped[str] = mapped_column(String(16))
    provider_key: Mapped[str] = mapped_column(String(8))
    partner_reservation_id: Mapped[str | None] = mapped_column(String(64))
    contract_id: Mapped[str] = mapped_column(String(64))
    evse_id: Mapped[str] = mapped_column(String(48))
    evse_key: Mapped[str] = mapped_column(String(41))
    operator_key: Mapped[str] = mapped_column(String(8))
    requested_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    requested_expiry: Mapped[datetime] = mapped_column(UtcDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))  # pending held refused failed cancelled
    reservation_id: Mapped[str | None] = mapped_column(String(64))  # the CLM's
    granted_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    granted_expiry: Mapped[datetime | None] = mapped_column(UtcDateTime)
    fault_code: Mapped[str | None] = mapped_column(String(64))
    fault_message: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)


class EvsePullRow(Base):
    """One run of a pull from an operator's CLM (domain/charging/pull.py), ok or failed.

    Written when the run ends: with the data it stored, in the same transaction, or after
    the rollback with the failure's kind and detail. ``as_of`` is the CLM's mark of the run
    (the since of the next status pull reads it); ``rejections`` holds the first rejected
    records as JSON ([evseId, reason, field, message], ...).
    """

    __tablename__ = "evse_pull"
    __table_args__ = (
        Index("ix_evse_pull_operator", "operator_key", "kind", "started_at"),
        Index("ix_evse_pull_started", "started_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    operator_key: Mapped[str] = mapped_column(String(8))
    operator_wire: Mapped[str] = mapped_column(String(8))
    partner_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # full | delta | status
    trigger: Mapped[str] = mapped_column(String(8))  # cli | schedule
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(8))  # ok | failed
    failure_kind: Mapped[str | None] = mapped_column(String(16))
    fault_code: Mapped[str | None] = mapped_column(String(64))
    failure_detail: Mapped[str | None] = mapped_column(Text)
    received: Mapped[int] = mapped_column(Integer)
    stored: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    rejections: Mapped[str | None] = mapped_column(Text)
