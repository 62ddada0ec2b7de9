"""Roaming authorization: customer contracts, per-EVSP authorization settings, decisions.

EVSPs upload their customer contracts (full lists or deltas, possibly in chunks); tokens are
kept as digests for look-ups. Each EVSP chooses how its customers are authorized (stored list
or a live ask of its own endpoint). Every authorization decision is recorded for both parties.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    _customer_contracts()
    _uploads()
    op.create_table(
        "authorization_settings",
        sa.Column("partner_id", sa.String(64), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("live_timeout_ms", sa.Integer, nullable=False),
        sa.Column("fallback", sa.String(16), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    _decisions()


def _customer_contracts() -> None:
    op.create_table(
        "customer_contract",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("contract_key", sa.String(16), nullable=False, unique=True),
        sa.Column("contract_wire", sa.String(18), nullable=False),
        sa.Column("provider_key", sa.String(8), nullable=False),
        sa.Column("provider_wire", sa.String(8), nullable=False),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("valid_from", _WHEN, nullable=False),
        sa.Column("valid_to", _WHEN),
        sa.Column("record_json", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("upload_id", sa.String(64)),
        sa.Column("updated_at", _WHEN, nullable=False),
    )
    op.create_index(
        "ix_customer_contract_provider_key", "customer_contract", ["provider_key", "contract_key"]
    )
    op.create_index("ix_customer_contract_partner_id", "customer_contract", ["partner_id"])
    op.create_index("ix_customer_contract_updated_at", "customer_contract", ["updated_at"])
    op.create_table(
        "customer_contract_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "contract_pk",
            sa.Integer,
            sa.ForeignKey("customer_contract.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider_key", sa.String(8), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.UniqueConstraint(
            "provider_key", "algorithm", "digest", name="uq_customer_contract_token_digest"
        ),
    )
    op.create_index(
        "ix_customer_contract_token_contract_pk", "customer_contract_token", ["contract_pk"]
    )
    op.create_index("ix_customer_contract_token_digest", "customer_contract_token", ["digest"])


def _uploads() -> None:
    op.create_table(
        "customer_contract_upload",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("provider_key", sa.String(8), nullable=False),
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        sa.Column("chunk_count", sa.Integer),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome_json", sa.Text, nullable=False),
        sa.Column("staged_json", sa.Text),
        sa.Column("processed_at", _WHEN, nullable=False),
        sa.UniqueConstraint(
            "provider_key", "upload_id", "chunk_index", name="uq_customer_contract_upload"
        ),
    )
    op.create_table(
        "customer_contract_provider",
        sa.Column("provider_key", sa.String(8), primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("last_upload_at", _WHEN, nullable=False),
    )


def _decisions() -> None:
    op.create_table(
        "authorization_decision",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("decided_at", _WHEN, nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("caller_partner_id", sa.String(64), nullable=False),
        sa.Column("operator_partner_id", sa.String(64), nullable=False),
        sa.Column("operator_wire", sa.String(8), nullable=False),
        sa.Column("operator_key", sa.String(8)),
        sa.Column("evse_wire", sa.String(41), nullable=False),
        sa.Column("evse_key", sa.String(41)),
        sa.Column("contract_wire", sa.String(18)),
        sa.Column("contract_key", sa.String(16)),
        sa.Column("token_json", sa.Text),
        sa.Column("partner_session_id", sa.String(64)),
        sa.Column("provider_wire", sa.String(8)),
        sa.Column("provider_key", sa.String(8)),
        sa.Column("provider_partner_id", sa.String(64)),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("oicp_code", sa.String(3), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("valid_until", _WHEN),
        sa.Column("stop_json", sa.Text),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("repeats", sa.Integer, nullable=False, server_default="0"),
    )
    table = "authorization_decision"
    op.create_index(f"ix_{table}_decided_at", table, ["decided_at"])
    op.create_index(f"ix_{table}_repeat", table, ["operator_key", "partner_session_id"])
    op.create_index(f"ix_{table}_operator", table, ["operator_partner_id", "decided_at"])
    op.create_index(f"ix_{table}_provider", table, ["provider_partner_id", "decided_at"])


def downgrade() -> None:
    op.drop_table("authorization_decision")
    op.drop_table("authorization_settings")
    op.drop_table("customer_contract_provider")
    op.drop_table("customer_contract_upload")
    op.drop_table("customer_contract_token")
    op.drop_table("customer_contract")
