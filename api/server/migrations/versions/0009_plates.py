"""Licence plates: the plate a parking report carries and its confidence, on reports and
cases (the case's is its best report's), indexed for the console's search by plate.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("cases", "reports"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("plate", sa.String(length=16), nullable=True))
            batch.add_column(sa.Column("plate_confidence", sa.Float(), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.create_index("ix_cases_plate", ["plate"])


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_plate")
    for table in ("reports", "cases"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("plate_confidence")
            batch.drop_column("plate")
