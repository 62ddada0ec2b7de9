"""Reservations: every ReserveEvse / CancelReservation gembus routed, with its outcome.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa  # noqa: F401 - the tables come with the work that fills this slot
from alembic import op  # noqa: F401

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
