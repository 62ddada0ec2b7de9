"""Reservations: every ReserveEvse / CancelReservation gembus routed, with its outcome.

``reservation`` holds one row per ReserveEvse an EVSP sent to /services/reservation (once
its providerId checked out): what was asked, the CLM's reservationId and granted period,
the state (pending, held, refused, failed, cancelled) with the fault, and the cancellation.
The EVSP's idempotency key (provider_key, partner_reservation_id) is unique among the live
rows only, a partial index on PostgreSQL and SQLite alike.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_LIVE = sa.text("state IN ('pending', 'held', 'cancelled')")


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "reservation",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("provider_id", sa.String(16), nullable=False),
        sa.Column("provider_key", sa.String(8), nullable=False),
        sa.Column("partner_reservation_id", sa.String(64)),
        sa.Column("contract_id", sa.String(64), nullable=False),
        sa.Column("evse_id", sa.String(48), nullable=False),
        sa.Column("evse_key", sa.String(41), nullable=False),
        sa.Column("operator_key", sa.String(8), nullable=False),
        sa.Column("requested_start", ts),
        sa.Column("requested_expiry", ts, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("reservation_id", sa.String(64)),
        sa.Column("granted_start", ts),
        sa.Column("granted_expiry", ts),
        sa.Column("fault_code", sa.String(64)),
        sa.Column("fault_message", sa.Text),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("cancelled_at", ts),
        sa.Column("cancel_reason", sa.Text),
    )
    op.create_index(
        "ux_reservation_partner_reference",
        "reservation",
        ["provider_key", "partner_reservation_id"],
        unique=True,
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )
    op.create_index("ix_reservation_clm_id", "reservation", ["operator_key", "reservation_id"])
    op.create_index("ix_reservation_partner", "reservation", ["partner_id", "created_at"])


def downgrade() -> None:
    op.drop_table("reservation")
