"""Proximity indexes of their own for the DC fast-charging plugs.

A search for "a CCS charger within 10 km" read every EVSE of the grid cells around the
centre from ix_evse_cell and dropped three in four on the plug mask. A partial copy of that
index per fast-charging plug (persistence/tables.py INDEXED_PLUGS) holds only the EVSEs that
have it, so such a search reads a quarter of the rows. PostgreSQL builds each covering
(INCLUDE); SQLite keeps a plain partial index on the cell.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: Bits of TeslaConnector, CCS Combo 2, CCS Combo 1 and CHAdeMO in PLUGS, as of this revision.
_BITS = (3, 15, 16, 17)
_COVERS = [
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
]


def upgrade() -> None:
    for bit in _BITS:
        predicate = sa.text(f"plug_mask & {1 << bit} <> 0")
        op.create_index(
            f"ix_evse_cell_plug{bit}",
            "evse",
            ["cell"],
            postgresql_include=_COVERS,
            postgresql_where=predicate,
            sqlite_where=predicate,
        )


def downgrade() -> None:
    for bit in _BITS:
        op.drop_index(f"ix_evse_cell_plug{bit}", table_name="evse")
