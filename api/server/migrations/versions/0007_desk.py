"""The dispatch desk: grid cells, the routing table, a case's department, deadline and
verification, department keys.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

_CASE_COLUMNS = (
    ("department", sa.String(length=200)),
    ("urgency", sa.String(length=16)),
    ("dispatched_at", TS),
    ("deadline", TS),
    ("overdue_at", TS),
    ("resolved_at", TS),
    ("verification", sa.String(length=16)),
    ("verified_at", TS),
)


def upgrade() -> None:
    op.create_table(
        "grid_cells",
        sa.Column("code", sa.String(length=64), primary_key=True),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
    )
    op.create_table(
        "desk_routing",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
    )
    with op.batch_alter_table("cases") as batch:
        for name, type_ in _CASE_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.create_index("ix_cases_department_status", ["department", "status"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("department", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("department")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_department_status")
        for name, _ in reversed(_CASE_COLUMNS):
            batch.drop_column(name)
    op.drop_table("desk_routing")
    op.drop_table("grid_cells")
