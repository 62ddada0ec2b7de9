"""Publish/subscribe: subscriptions and the transactional outbox (dead letters included).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "subscription",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscription_id", sa.String(64), nullable=False, unique=True),
        sa.Column("partner_id", sa.String(64), nullable=False, index=True),
        sa.Column("topic", sa.String(32), nullable=False, index=True),
        sa.Column("endpoint_url", sa.String(2000), nullable=False),
        sa.Column("filter_json", sa.Text),
        sa.Column("identity", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("partner_id", "identity", name="uq_subscription_partner_identity"),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(40), nullable=False, index=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=False, index=True),
        sa.Column("endpoint_url", sa.String(2000), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_outbox_pending", "outbox", ["id"], postgresql_where=_PENDING, sqlite_where=_PENDING
    )
    op.create_index("ix_outbox_status_delivered_at", "outbox", ["status", "delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_status_delivered_at", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("subscription")
