"""Object positions, superseded reports, webhook delivery policy.

- reports and cases: the object's own position (`position_lat`, `position_lon`) from the
  camera's ground calibration, apart from the camera's location (`lat`, `lon`);
- reports: `superseded_by`, the newer report of the same camera and zone that took over an
  open one, so that a case never waits for a report nobody can finish;
- webhooks: why and when an endpoint was disabled, and since when it has been failing;
- webhook deliveries: the claim (`claim_token`, `claimed_until`) a dispatcher holds while it
  sends, so that two API processes never send one delivery twice;
- changes: `case_seq`, `case_id` and `to_status` may be empty, for events that are about an
  endpoint rather than a case (`webhook.disabled`).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("reports", "cases"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("position_lat", sa.Float(), nullable=True))
            batch.add_column(sa.Column("position_lon", sa.Float(), nullable=True))
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("superseded_by", sa.String(length=128), nullable=True))
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("disabled_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("changes") as batch:
        batch.alter_column("case_seq", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("case_id", existing_type=sa.String(length=40), nullable=True)
        batch.alter_column("to_status", existing_type=sa.String(length=16), nullable=True)
    with op.batch_alter_table("changes") as batch:
        batch.create_index("ix_changes_at", ["at"], unique=False)
    with op.batch_alter_table("idempotency") as batch:
        batch.create_index("ix_idempotency_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency") as batch:
        batch.drop_index("ix_idempotency_created_at")
    with op.batch_alter_table("changes") as batch:
        batch.drop_index("ix_changes_at")
    op.execute("DELETE FROM webhook_deliveries WHERE change_seq IN "
               "(SELECT seq FROM changes WHERE case_seq IS NULL)")  # fmt: skip
    op.execute("DELETE FROM changes WHERE case_seq IS NULL")
    with op.batch_alter_table("changes") as batch:
        batch.alter_column("to_status", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("case_id", existing_type=sa.String(length=40), nullable=False)
        batch.alter_column("case_seq", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claim_token")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("disabled_reason")
        batch.drop_column("disabled_at")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("superseded_by")
    for table in ("cases", "reports"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("position_lon")
            batch.drop_column("position_lat")
