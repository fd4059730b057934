"""Database access: engine setup for SQLite (WAL) and PostgreSQL, migrations, sessions.

Every write runs under one database-wide write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL:
a transaction advisory lock). Writers therefore commit in the order they allocate change
sequence numbers, so a change-feed reader can never see seq N+1 before seq N; and two
reports of one incident arriving at once cannot both open a case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.server.clock import Clock

MIGRATIONS = Path(__file__).parent / "migrations"
_WRITE = "streetwatch_write"
_PG_WRITE_LOCK = 0x5357_0001  # arbitrary, constant advisory-lock keys
_PG_MIGRATE_LOCK = 0x5357_0002


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _private_file(path: Path) -> None:
    """The database (and its WAL and shared-memory files, which SQLite creates with the
    database's mode) readable by its owner only: it holds the keys' hashes and the cases."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists():
            os.chmod(p, 0o600)


def _sqlite_engine(url: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:" and not path.startswith("file:"):
        _private_file(Path(path))
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control from pysqlite, which begins late and never IMMEDIATE.
        dbapi_conn.isolation_level = None
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        write = conn.get_execution_options().get(_WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Database:
    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = normalize_url(url)
        # The server's "now" (api/server/clock.py), in every session as `now_in(session)`.
        self.clock = clock or Clock()
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        self.engine = (
            _sqlite_engine(self.url)
            if self.is_sqlite
            else create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        )
        self.sessions = sessionmaker(
            self.engine, expire_on_commit=False, info={"clock": self.clock}
        )

    def upgrade(self) -> None:
        """Bring the schema to the newest migration, under a lock: replicas starting together
        (or `streetwatch migrate` beside them) run the migrations once, one after another.

        PostgreSQL: a transaction advisory lock, held until the migrations commit (its DDL is
        transactional, so a replica that waited finds the schema current); SQLite: the
        database's write lock (`BEGIN IMMEDIATE`)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATE_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")

    def revision(self) -> tuple[str | None, str]:
        """(the schema's migration, the newest one this code has)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        return current, head or ""

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction holding the write lock; commits on success, rolls back on error."""
        with self.sessions() as session, session.begin():
            session.connection(execution_options={_WRITE: True})
            if not self.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
