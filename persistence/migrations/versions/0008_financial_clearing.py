"""Financial clearing: price plans, clearing statements and their gross lines.

Money columns are NUMERIC on PostgreSQL (a statement sums them in SQL) and the decimal text
on SQLite (persistence/tables.py ExactDecimal). A statement stores its gross lines; netted
lines, net positions and the SDR items are derived from them and the SDRs on reading.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _money() -> sa.types.TypeEngine[Decimal]:
    return sa.Numeric(18, 6).with_variant(sa.String(40), "sqlite")


def upgrade() -> None:
    op.create_table(
        "price_plan",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.String(64), nullable=False, unique=True),
        sa.Column("operator_id", sa.String(32), nullable=False),
        sa.Column("operator_key", sa.String(32), nullable=False),
        sa.Column("provider_id", sa.String(32), nullable=False),
        sa.Column("provider_key", sa.String(32), nullable=False),
        sa.Column("service_type", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("per_kwh", _money()),
        sa.Column("per_minute", _money()),
        sa.Column("per_session", _money()),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("contract_reference", sa.String(64)),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_in_statement", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_price_plan_pair",
        "price_plan",
        ["operator_key", "provider_key", "service_type", "currency"],
    )
    # A clearing run prices one day of session starts at a time.
    op.create_index("ix_sdr_clearing_start", "sdr", ["status", "session_start"])
    op.create_table(
        "clearing_statement",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("statement_id", sa.String(64), nullable=False, unique=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cut_off", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("sdr_count", sa.Integer, nullable=False),
        sa.Column("unpriced_count", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_clearing_statement_issued_period",
        "clearing_statement",
        ["period_start", "period_end"],
        unique=True,
        postgresql_where=sa.text("status = 'issued'"),
        sqlite_where=sa.text("status = 'issued'"),
    )
    op.create_table(
        "clearing_line",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("statement_id", sa.String(64), nullable=False, index=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("debtor", sa.String(64), nullable=False),
        sa.Column("creditor", sa.String(64), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("sdr_count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("clearing_line")
    op.drop_table("clearing_statement")
    op.drop_table("price_plan")
    op.drop_index("ix_sdr_clearing_start", "sdr")
