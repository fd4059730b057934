"""The review console and its feedback loop: suppressions, camera health, console sessions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("zone_id", sa.String(length=128), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("bbox", sa.JSON(), nullable=False),
        sa.Column("min_iou", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("schedule", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_suppressions_camera_id", "suppressions", ["camera_id"])
    op.create_table(
        "camera_health",
        sa.Column("camera_id", sa.String(length=128), primary_key=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("since", TS, nullable=True),
        sa.Column("last_frame_at", TS, nullable=True),
        sa.Column("reported_at", TS, nullable=False),
        sa.Column("reported_by", sa.String(length=200), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
        sa.Column("thumbnail_type", sa.String(length=32), nullable=True),
        sa.Column("thumbnail_at", TS, nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("api_key_id", sa.String(length=32), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=False),
        sa.Column("flash", sa.Text(), nullable=True),
    )
    op.create_index("ix_console_sessions_api_key_id", "console_sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_table("console_sessions")
    op.drop_table("camera_health")
    op.drop_table("suppressions")
