"""Charging domain: EVSE master data, documents, live status, operators, upload replays.

``evse`` is the narrow searchable projection; its indexes serve the five criteria groups of
Search EVSE at 1,000,000 rows on PostgreSQL and SQLite alike: ``cell`` (0.1-degree grid) for
proximity, latitude for very large radii, operator + EVSE key for the default order, city and
postal code for the address group. The record's XML lives in ``evse_document``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "evse",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("evse_key", sa.String(41), nullable=False, unique=True),
        sa.Column("evse_wire", sa.String(41), nullable=False),
        sa.Column("operator_key", sa.String(8), nullable=False),
        sa.Column("operator_wire", sa.String(8), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("city_fold", sa.String(64), nullable=False),
        sa.Column("postal_code", sa.String(10)),
        sa.Column("street_fold", sa.String(255)),
        sa.Column("house_number", sa.String(16)),
        sa.Column("latitude", sa.Float, nullable=False),
        sa.Column("longitude", sa.Float, nullable=False),
        sa.Column("cell", sa.Integer, nullable=False),
        *(
            sa.Column(name, sa.Integer, nullable=False)
            for name in (
                "plug_mask",
                "connector_mask",
                "mode_mask",
                "auth_mask",
                "payment_mask",
                "service_mask",
            )
        ),
        sa.Column("accessibility", sa.String(32), nullable=False),
        sa.Column("ac_kw", sa.Float),
        sa.Column("dc_kw", sa.Float),
        sa.Column("max_kw", sa.Float),
        *(
            sa.Column(name, sa.Boolean, nullable=False)
            for name in ("battery_swap", "reservable", "renewable", "dynamic_info")
        ),
        sa.Column("static_status", sa.String(12), nullable=False),
        sa.Column("twentyfourseven", sa.Boolean, nullable=False),
        sa.Column("hours_json", sa.Text),
        sa.Column("last_update", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
    )
    # Covering on PostgreSQL (INCLUDE is ignored elsewhere): proximity + technical/operator
    # filters become an index-only scan, wherever the rows lie in the heap.
    op.create_index(
        "ix_evse_cell",
        "evse",
        ["cell"],
        postgresql_include=[
            "latitude",
            "longitude",
            "static_status",
            "plug_mask",
            "connector_mask",
            "mode_mask",
            "ac_kw",
            "dc_kw",
            "max_kw",
            "battery_swap",
            "operator_key",
            "evse_key",
        ],
    )
    op.create_index("ix_evse_latitude", "evse", ["latitude"])
    op.create_index("ix_evse_operator", "evse", ["operator_key", "evse_key"])
    op.create_index("ix_evse_city", "evse", ["country", "city_fold"])
    op.create_index("ix_evse_postal_code", "evse", ["postal_code"])
    op.create_table(
        "evse_document",
        sa.Column("evse_key", sa.String(41), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
    )
    op.create_table(
        "evse_status",
        sa.Column("evse_key", sa.String(41), primary_key=True),
        sa.Column("major", sa.String(16), nullable=False),
        sa.Column("minor", sa.String(16)),
        sa.Column("ttl", ts),
        sa.Column("updated_at", ts, nullable=False),
    )
    op.create_table(
        "evse_operator",
        sa.Column("operator_key", sa.String(8), primary_key=True),
        sa.Column("operator_wire", sa.String(8), nullable=False),
        sa.Column("last_write_at", ts, nullable=False),
        sa.Column("pull_last_attempt_at", ts),
        sa.Column("pull_last_success_at", ts),
        sa.Column("pull_last_full_at", ts),
        sa.Column("pull_last_error", sa.Text),
        sa.Column("pull_records", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "evse_upload",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("partner_id", sa.String(64), nullable=False),
        sa.Column("upload_key", sa.String(160), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("processed_at", ts, nullable=False),
        sa.UniqueConstraint("partner_id", "upload_key"),
    )


def downgrade() -> None:
    for table in ("evse_upload", "evse_operator", "evse_status", "evse_document"):
        op.drop_table(table)
    for index in (
        "ix_evse_postal_code",
        "ix_evse_city",
        "ix_evse_operator",
        "ix_evse_latitude",
        "ix_evse_cell",
    ):
        op.drop_index(index, table_name="evse")
    op.drop_table("evse")
