"""SDR forwarding: service detail records, their versions, per-EVSP delivery settings, and the
outbox's message kind (Notify or ReceiveSdrs).

``sdr`` is the current state of each record, kept narrow for financial clearing (amounts,
currency, creditor operator and debtor EVSP as columns; its (status, session_start) index comes
with the clearing tables in 0008); ``sdr_version`` holds each stored version's document.
Money is NUMERIC on PostgreSQL and the decimal text on SQLite, like the other money columns
(persistence/tables.py ExactDecimal).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PENDING = sa.text("status IN ('accepted', 'revised')")


def _money() -> sa.types.TypeEngine[Decimal]:
    return sa.Numeric(18, 6).with_variant(sa.String(40), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.add_column(
        "outbox", sa.Column("kind", sa.String(16), nullable=False, server_default="notify")
    )
    op.create_table(
        "sdr",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("sdr_id", sa.String(36), nullable=False, unique=True),
        sa.Column("operator_partner_id", sa.String(64), nullable=False),
        sa.Column("operator_key", sa.String(8), nullable=False),
        sa.Column("operator_wire", sa.String(16), nullable=False),
        sa.Column("provider_partner_id", sa.String(64), nullable=False),
        sa.Column("provider_key", sa.String(8), nullable=False),
        sa.Column("provider_wire", sa.String(16), nullable=False),
        sa.Column("evse_id", sa.String(48), nullable=False),
        sa.Column("contract_id", sa.String(24), nullable=False),
        sa.Column("contract_key", sa.String(16), nullable=False),
        sa.Column("service_type", sa.String(24), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _when("session_start"),
        _when("session_end"),
        sa.Column("total_cost", _money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("energy_kwh", _money(), nullable=False),
        _when("received_at"),
        _when("status_changed_at"),
        sa.Column("forwarded_version", sa.Integer),
        sa.Column("decline_code", sa.String(32)),
        sa.Column("decline_reason", sa.Text),
        _when("declined_at", nullable=True),
    )
    op.create_index(
        "ix_sdr_pending",
        "sdr",
        ["provider_partner_id", "received_at", "sdr_id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index(
        "ix_sdr_operator", "sdr", ["operator_partner_id", "status_changed_at", "sdr_id"]
    )
    op.create_table(
        "sdr_version",
        sa.Column("sdr_id", sa.String(36), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _when("received_at"),
        sa.Column("document", sa.Text, nullable=False),
    )
    op.create_table(
        "sdr_delivery",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sdr_delivery")
    op.drop_table("sdr_version")
    op.drop_index("ix_sdr_operator", table_name="sdr")
    op.drop_index("ix_sdr_pending", table_name="sdr")
    op.drop_table("sdr")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("kind")
