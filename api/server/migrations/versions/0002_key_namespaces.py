"""Keys bound to what they serve: report ids and Idempotency-Keys per key namespace, keys
bound to cameras, room for encrypted webhook secrets.

Existing reports join the namespace of the key that sent them (from the change feed);
existing Idempotency-Keys, whose sender is not recorded, keep an empty namespace that no
key has, so they are never replayed again (a repeat lands as the same report, once).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _namespace_column() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("namespace", sa.String(length=32), nullable=False, server_default="")


def _repk(table: str, old_pk: str, columns: list[str]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with warnings.catch_warnings():  # "primary key columns changed": that is the point
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.add_column(_namespace_column())
                batch.create_primary_key(f"pk_{table}", columns)
    else:
        op.add_column(table, _namespace_column())
        op.drop_constraint(old_pk, table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, columns)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("namespace", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("cameras", sa.JSON(), nullable=True))
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column(
            "secret", existing_type=sa.String(length=80), type_=sa.String(length=255)
        )
    _repk("reports", "reports_pkey", ["namespace", "id"])
    _repk("idempotency", "idempotency_pkey", ["namespace", "key"])

    # Each existing report belongs to the key whose change brought it in.
    conn = op.get_bind()
    changes = sa.table(
        "changes", sa.column("kind", sa.String), sa.column("api_key_id"), sa.column("data", sa.JSON)
    )
    reports = sa.table("reports", sa.column("id"), sa.column("namespace"))
    rows = conn.execute(
        sa.select(changes.c.api_key_id, changes.c.data).where(
            changes.c.kind.in_(["created", "merged"])
        )
    )
    for key_id, data in rows:
        report_id = (data or {}).get("report_id")
        if key_id and report_id:
            conn.execute(
                reports.update()
                .where(reports.c.id == report_id, reports.c.namespace == "")
                .values(namespace=key_id)
            )


def downgrade() -> None:
    for table, columns in (("idempotency", ["key"]), ("reports", ["id"])):
        if op.get_bind().dialect.name == "sqlite":
            with op.batch_alter_table(table, recreate="always") as batch:
                batch.create_primary_key(f"{table}_pkey", columns)
                batch.drop_column("namespace")
        else:
            op.drop_constraint(f"pk_{table}", table, type_="primary")
            op.create_primary_key(f"{table}_pkey", table, columns)
            op.drop_column(table, "namespace")
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column(
            "secret", existing_type=sa.String(length=255), type_=sa.String(length=80)
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("cameras")
        batch.drop_column("namespace")
