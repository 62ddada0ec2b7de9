"""Repositories: SQL in, domain objects out. Methods are named for intent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from domain.identifiers import OperatorId, ProviderId
from domain.partners import Address, Contact, Partner, PartnerData, PartnerStatus, Role
from persistence.tables import (
    ChangeCounterRow,
    PartnerIdentifierRow,
    PartnerRoleRow,
    PartnerRow,
)

#: Bumped by every partner change, so per-process credential caches stay current.
PARTNERS_COUNTER = "partners"


def purge_expired_nonces(engine: Engine) -> None:
    """Drop replay-store rows whose Created window has closed (a nonce older than that is
    refused as stale before the store is asked). Callers run it every thousand or so nonces."""
    with engine.begin() as connection:
        connection.execute(_PURGE_NONCES, {"now": datetime.now(UTC)})


_PURGE_NONCES = text("DELETE FROM wsse_nonce WHERE expires_at < :now")

#: The replay check as the first CTEs of a hot path's one statement (PostgreSQL): $1 username
#: (NULL for a token without nonce), $2 nonce, $3 expiry; ``ok.fresh`` says whether to go on.
NONCE_CTES = """
    fresh AS (
    INSERT INTO wsse_nonce (username, nonce, expires_at)
    SELECT $1::varchar, $2::varchar, $3::timestamptz WHERE $1::varchar IS NOT NULL
    ON CONFLICT DO NOTHING RETURNING 1
), ok AS (
    SELECT ($1::varchar IS NULL OR EXISTS (SELECT 1 FROM fresh)) AS fresh
)"""
#: The same check alone, for databases without data-modifying CTEs (a row back: new nonce).
NONCE_INSERT = (
    "INSERT INTO wsse_nonce (username, nonce, expires_at) VALUES (:username, :nonce, "
    ":expires_at) ON CONFLICT DO NOTHING RETURNING 1"
)


def bump_counter(session: Session, name: str) -> None:
    """Increment a change counter inside the caller's transaction."""
    changed = session.execute(
        update(ChangeCounterRow)
        .where(ChangeCounterRow.name == name)
        .values(value=ChangeCounterRow.value + 1)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        session.add(ChangeCounterRow(name=name, value=1))
    session.flush()


class SqlPartnerRepository:
    """Partners with their roles and identifiers."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, partner: Partner, password_hash: str, sealed_password: str) -> None:
        row = PartnerRow(
            partner_id=partner.partner_id,
            password_hash=password_hash,
            password_sealed=sealed_password,
            created_at=partner.created_at,
        )
        _write(row, partner)
        self.session.add(row)
        self.session.flush()
        bump_counter(self.session, PARTNERS_COUNTER)

    def get(self, partner_id: str) -> Partner | None:
        row = self._row(partner_id)
        return _to_domain(row) if row else None

    def list(
        self, *, role: Role | None, status: PartnerStatus | None, offset: int, limit: int
    ) -> tuple[list[Partner], int]:
        query = select(PartnerRow)
        if role is not None:
            query = query.where(PartnerRow.roles.any(PartnerRoleRow.role == role.value))
        if status is not None:
            query = query.where(PartnerRow.status == status.value)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(PartnerRow.partner_id).offset(offset).limit(limit)
        # roles and identifiers are joined-eager: one query per partner page, made unique here
        rows = self.session.scalars(page).unique()
        return [_to_domain(r) for r in rows], total

    def owner_of_identifier(self, kind: str, key: str) -> str | None:
        query = (
            select(PartnerRow.partner_id)
            .join(PartnerIdentifierRow, PartnerIdentifierRow.partner_pk == PartnerRow.id)
            .where(PartnerIdentifierRow.kind == kind, PartnerIdentifierRow.key == key)
        )
        return self.session.scalar(query)

    def update(self, partner: Partner) -> None:
        row = self._row(partner.partner_id)
        assert row is not None, partner.partner_id
        _write(row, partner)
        self.session.flush()
        bump_counter(self.session, PARTNERS_COUNTER)

    def set_credentials(self, partner_id: str, password_hash: str, sealed_password: str) -> None:
        row = self._row(partner_id)
        assert row is not None, partner_id
        row.password_hash, row.password_sealed = password_hash, sealed_password
        row.credentials_rotated_at = datetime.now(UTC)
        self.session.flush()
        bump_counter(self.session, PARTNERS_COUNTER)

    def sealed_credential(self, partner_id: str) -> tuple[str, str, PartnerStatus] | None:
        """(password hash, sealed password, status) for the authenticator."""
        row = self.session.execute(
            select(PartnerRow.password_hash, PartnerRow.password_sealed, PartnerRow.status).where(
                PartnerRow.partner_id == partner_id
            )
        ).first()
        return (row[0], row[1], PartnerStatus(row[2])) if row else None

    def _row(self, partner_id: str) -> PartnerRow | None:
        return self.session.scalar(select(PartnerRow).where(PartnerRow.partner_id == partner_id))


def _write(row: PartnerRow, partner: Partner) -> None:
    """Copy a domain partner onto its row (roles and identifiers replaced whole)."""
    data = partner.data
    row.legal_name = data.legal_name
    row.status = partner.status.value
    row.contact_email = data.contact.email
    row.contact_telephone = data.contact.telephone
    row.contact_person = data.contact.person
    row.address_json = json.dumps(data.address.__dict__) if data.address else None
    row.updated_at = partner.updated_at
    _sync_roles(row, data.roles)
    _sync_identifiers(row, data)


def _sync_roles(row: PartnerRow, roles: tuple[Role, ...]) -> None:
    """Update role rows in place: replacing them would re-insert a key before deleting it."""
    existing = {r.role: r for r in row.roles}
    row.roles = [existing.get(role.value) or PartnerRoleRow(role=role.value) for role in roles]
    for position, role_row in enumerate(row.roles):
        role_row.position = position


def _sync_identifiers(row: PartnerRow, data: PartnerData) -> None:
    """Keep rows whose (kind, key) stay, so the unique key never sees a transient duplicate."""
    wanted = [("operator", o.wire, o.key) for o in data.operator_ids]
    wanted += [("provider", p.wire, p.key) for p in data.provider_ids]
    existing = {(i.kind, i.key): i for i in row.identifiers}
    rows = []
    for position, (kind, wire, key) in enumerate(wanted):
        ident = existing.get((kind, key)) or PartnerIdentifierRow(kind=kind, key=key)
        ident.wire, ident.position = wire, position
        rows.append(ident)
    row.identifiers = rows


def _to_domain(row: PartnerRow) -> Partner:
    address: dict[str, Any] | None = json.loads(row.address_json) if row.address_json else None
    data = PartnerData(
        legal_name=row.legal_name,
        roles=tuple(Role(r.role) for r in row.roles),
        contact=Contact(row.contact_email, row.contact_telephone, row.contact_person),
        operator_ids=tuple(
            OperatorId.parse(i.wire) for i in row.identifiers if i.kind == "operator"
        ),
        provider_ids=tuple(
            ProviderId.parse(i.wire) for i in row.identifiers if i.kind == "provider"
        ),
        address=Address(**address) if address else None,
    )
    return Partner(
        row.partner_id,
        PartnerStatus(row.status),
        data,
        row.created_at,
        row.updated_at,
        row.credentials_rotated_at,
    )
