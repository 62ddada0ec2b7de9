"""Gateway: calls are recorded pending before forwarding; per-route policies.

A routed call's row is written before the provider sees it (outcome ``pending``) and
completed later, so its latency and reply size are unknown until then. Route policies are the
operator's per-service timeout and outbound-validation mode.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_call") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float, nullable=True)
        batch.alter_column("bytes_out", existing_type=sa.Integer, nullable=True)
    with op.batch_alter_table("usage_call") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float, nullable=True)
    op.create_table(
        "route_policy",
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("timeout_ms", sa.Integer),
        sa.Column("response_validation", sa.String(32)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("route_policy")
    op.execute("UPDATE gateway_call SET latency_ms = 0 WHERE latency_ms IS NULL")
    op.execute("UPDATE gateway_call SET bytes_out = 0 WHERE bytes_out IS NULL")
    op.execute("UPDATE usage_call SET latency_ms = 0 WHERE latency_ms IS NULL")
    with op.batch_alter_table("usage_call") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float, nullable=False)
    with op.batch_alter_table("gateway_call") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float, nullable=False)
        batch.alter_column("bytes_out", existing_type=sa.Integer, nullable=False)
