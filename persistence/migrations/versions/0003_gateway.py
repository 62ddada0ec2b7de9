"""Gateway transaction log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_call",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("message_id", sa.String(64), nullable=False, index=True),
        sa.Column("requester_id", sa.String(64), index=True),
        sa.Column("provider_id", sa.String(64), index=True),
        sa.Column("service_id", sa.String(64), index=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(64)),
        sa.Column("contract_id", sa.String(64), index=True),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("fault_code", sa.String(64)),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("bytes_in", sa.Integer, nullable=False),
        sa.Column("bytes_out", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_call")
