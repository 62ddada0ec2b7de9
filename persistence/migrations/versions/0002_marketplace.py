"""Marketplace: services, offerings, service contracts, roaming agreements, usage, counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "service",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("service_id", sa.String(64), nullable=False, unique=True),
        sa.Column("provider_id", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("category", sa.String(32), nullable=False, index=True),
        sa.Column("family", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("endpoint_url", sa.String(2000), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "offering",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("offering_id", sa.String(64), nullable=False, unique=True),
        sa.Column("service_id", sa.String(64), sa.ForeignKey("service.service_id"), nullable=False, index=True),
        sa.Column("provider_id", sa.String(64), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("terms_json", sa.Text, nullable=False),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_to", TS),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "service_contract",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contract_id", sa.String(64), nullable=False, unique=True),
        sa.Column("offering_id", sa.String(64), sa.ForeignKey("offering.offering_id"), nullable=False, index=True),
        sa.Column("service_id", sa.String(64), sa.ForeignKey("service.service_id"), nullable=False, index=True),
        sa.Column("provider_id", sa.String(64), nullable=False, index=True),
        sa.Column("requester_id", sa.String(64), nullable=False, index=True),
        sa.Column("terms_json", sa.Text, nullable=False),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_to", TS),
        sa.Column("accepted_at", TS, nullable=False),
        sa.Column("requester_reference", sa.String(64)),
        sa.Column("terminated_at", TS),
        sa.Column("terminated_by", sa.String(64)),
        sa.Column("termination_reason", sa.Text),
    )
    op.create_index("ix_service_contract_parties", "service_contract", ["requester_id", "provider_id"])
    op.create_table(
        "roaming_agreement",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agreement_id", sa.String(64), nullable=False, unique=True),
        sa.Column("operator_wire", sa.String(16), nullable=False),
        sa.Column("operator_key", sa.String(16), nullable=False, index=True),
        sa.Column("operator_partner_id", sa.String(64), nullable=False, index=True),
        sa.Column("provider_wire", sa.String(16), nullable=False),
        sa.Column("provider_key", sa.String(16), nullable=False, index=True),
        sa.Column("provider_partner_id", sa.String(64), nullable=False, index=True),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_to", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("terminated_at", TS),
        sa.Column("terminated_by", sa.String(64)),
        sa.Column("termination_reason", sa.Text),
    )
    op.create_table(
        "usage_call",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contract_id", sa.String(64), nullable=False, index=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("fault_code", sa.String(64)),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("over_quota", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "change_counter",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("change_counter", "usage_call", "roaming_agreement", "service_contract", "offering", "service"):
        op.drop_table(table)
