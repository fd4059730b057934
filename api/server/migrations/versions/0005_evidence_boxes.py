"""Clean evidence: the frame is stored unaltered, what was seen on it as metadata.

- case_evidence: `boxes`, the worker's boxes and labels on that image (JSON);
- evidence: `width`, `height` of the image, so the boxes can be drawn over it when shown;
- cases: `reviewed_bbox`, a reviewer's correction of the box (training data).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("case_evidence") as batch:
        batch.add_column(sa.Column("boxes", sa.JSON(), nullable=True))
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("height", sa.Integer(), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("reviewed_bbox", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("reviewed_bbox")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("height")
        batch.drop_column("width")
    with op.batch_alter_table("case_evidence") as batch:
        batch.drop_column("boxes")
