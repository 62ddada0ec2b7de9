"""Storage of reservations (table ``reservation``): implements domain.ports.ReservationRepository.

The idempotency key is taken by the insert itself (``ON CONFLICT DO NOTHING`` against the
partial unique index over the live states), so two identical requests racing on two workers
write one pending record between them, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.charging.reservation import LIVE_STATES, Reservation, State
from persistence.bulk import on_postgres
from persistence.tables import ReservationRow

RESERVATION: Table = ReservationRow.__table__  # type: ignore[assignment]
_FIELDS = tuple(f.name for f in dataclasses.fields(Reservation) if f.name != "id")
_ISSUED = (State.HELD.value, State.CANCELLED.value)


class SqlReservationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, reservation: Reservation) -> int | None:
        dialect = postgresql if on_postgres(self.session) else sqlite
        statement = (
            dialect.insert(RESERVATION)
            .values(_values(reservation))
            .on_conflict_do_nothing()
            .returning(RESERVATION.c.id)
        )
        found = self.session.execute(statement).scalar()
        return int(found) if found is not None else None

    def update(self, reservation: Reservation) -> None:
        assert reservation.id is not None, "only stored reservations are updated"
        self.session.execute(
            update(RESERVATION)
            .where(RESERVATION.c.id == reservation.id)
            .values(_values(reservation))
        )

    def cancel(self, reservation: Reservation) -> bool:
        changed = self.session.execute(
            update(RESERVATION)
            .where(RESERVATION.c.id == reservation.id, RESERVATION.c.state == State.HELD.value)
            .values(_values(reservation))
        )
        return bool(changed.rowcount)  # type: ignore[attr-defined]

    def by_partner_reference(
        self, provider_key: str, partner_reservation_id: str | None
    ) -> Reservation | None:
        if partner_reservation_id is None:
            return None
        row = self.session.execute(
            select(RESERVATION).where(
                RESERVATION.c.provider_key == provider_key,
                RESERVATION.c.partner_reservation_id == partner_reservation_id,
                RESERVATION.c.state.in_([s.value for s in LIVE_STATES]),
            )
        ).first()
        return _reservation(row) if row is not None else None

    def by_reservation_id(self, operator_key: str, reservation_id: str) -> Reservation | None:
        row = self.session.execute(
            select(RESERVATION)
            .where(
                RESERVATION.c.operator_key == operator_key,
                RESERVATION.c.reservation_id == reservation_id,
                RESERVATION.c.state.in_(_ISSUED),
            )
            .order_by(RESERVATION.c.id.desc())
            .limit(1)
        ).first()
        return _reservation(row) if row is not None else None

    def list(self, partner_id: str | None, page: tuple[int, int]) -> tuple[list[Reservation], int]:
        statement = select(RESERVATION)
        if partner_id is not None:
            statement = statement.where(RESERVATION.c.partner_id == partner_id)
        total = self.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
        rows = self.session.execute(
            statement.order_by(RESERVATION.c.id.desc()).offset(page[0]).limit(page[1])
        )
        return [_reservation(r) for r in rows], int(total)


def _values(reservation: Reservation) -> dict[str, Any]:
    values = {name: getattr(reservation, name) for name in _FIELDS}
    values["state"] = reservation.state.value
    return values


def _reservation(row: Any) -> Reservation:
    values = {name: getattr(row, name) for name in _FIELDS}
    return Reservation(**{**values, "state": State(row.state), "id": row.id})
