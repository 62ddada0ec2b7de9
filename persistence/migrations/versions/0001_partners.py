"""Partners, their roles and identifiers, and the WS-Security nonce store.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "partner",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False, unique=True),
        sa.Column("legal_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("contact_email", sa.String(254), nullable=False),
        sa.Column("contact_telephone", sa.String(32)),
        sa.Column("contact_person", sa.String(255)),
        sa.Column("address_json", sa.Text),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("password_sealed", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("credentials_rotated_at", TS),
    )
    op.create_table(
        "partner_role",
        sa.Column("partner_pk", sa.Integer, sa.ForeignKey("partner.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True, index=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_table(
        "partner_identifier",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("partner_pk", sa.Integer, sa.ForeignKey("partner.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("wire", sa.String(16), nullable=False),
        sa.Column("key", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_partner_identifier_kind_key"),
    )
    op.create_table(
        "wsse_nonce",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("expires_at", TS, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("wsse_nonce")
    op.drop_table("partner_identifier")
    op.drop_table("partner_role")
    op.drop_table("partner")
