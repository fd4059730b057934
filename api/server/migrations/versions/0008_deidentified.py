"""De-identified evidence: renditions beside originals, who saw an original, retention.

- case_evidence: `rendition_sha256`, the de-identified rendition of the linked image;
- evidence: `removed_at`, when retention deleted an original's file;
- webhooks: `evidence`, whether an endpoint's payloads link renditions or originals;
- original_views: the audit log of originals shown in the console.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("case_evidence") as batch:
        batch.add_column(sa.Column("rendition_sha256", sa.String(length=64), nullable=True))
        batch.create_foreign_key(
            "fk_case_evidence_rendition", "evidence", ["rendition_sha256"], ["sha256"]
        )
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("removed_at", TS, nullable=True))
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(
            sa.Column(
                "evidence", sa.String(length=16), nullable=False, server_default="deidentified"
            )
        )
    op.create_table(
        "original_views",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("what", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_original_views_at", "original_views", ["at"])
    op.create_index("ix_original_views_case_id", "original_views", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_original_views_case_id", table_name="original_views")
    op.drop_index("ix_original_views_at", table_name="original_views")
    op.drop_table("original_views")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("evidence")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("removed_at")
    with op.batch_alter_table("case_evidence") as batch:
        batch.drop_constraint("fk_case_evidence_rendition", type_="foreignkey")
        batch.drop_column("rendition_sha256")
