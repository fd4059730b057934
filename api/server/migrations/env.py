"""Alembic environment: runs on the connection `api.server.db.Database.upgrade` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from api.server.tables import Base

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
    )
    with context.begin_transaction():
        context.run_migrations()


if (conn := config.attributes.get("connection")) is not None:
    _run(conn)
else:  # the `alembic` command line, with sqlalchemy.url in api/server/alembic.ini
    with create_engine(config.get_main_option("sqlalchemy.url") or "").connect() as conn:
        _run(conn)
