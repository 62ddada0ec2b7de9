"""Tables of gembus (SQLAlchemy 2.x declarative, typed). Alembic migrations mirror this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
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
