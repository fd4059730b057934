"""The fleet: camera definitions, workers' heartbeats, camera state handed between workers.

Revision ID: 0006
Revises: 0004 (re-chained after 0005 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fleet_cameras",
        sa.Column("camera_id", sa.String(length=128), primary_key=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
    )
    op.create_table(
        "fleet_workers",
        sa.Column("worker_id", sa.String(length=128), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("running", sa.JSON(), nullable=False),
        sa.Column("assigned", sa.JSON(), nullable=False),
    )
    op.create_table(
        "fleet_camera_state",
        sa.Column("camera_id", sa.String(length=128), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", TS, nullable=False),
        sa.Column("saved_by", sa.String(length=128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fleet_camera_state")
    op.drop_table("fleet_workers")
    op.drop_table("fleet_cameras")
