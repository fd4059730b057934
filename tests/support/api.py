"""Helpers for tests that need a real intake server: over real HTTP, on a real database.

    with run_server(Settings(data_dir=tmp_path)) as server:
        key = server.create_key("ingest")
        httpx.post(f"{server.url}/v1/cases", ...)

`postgres_cluster()` starts a throwaway PostgreSQL on loopback (scripts/postgres-test.sh)
and `fresh_database()` makes an empty database in it per test.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from sqlalchemy.engine import make_url

from api.server.app import create_app
from api.server.auth import Scope, create_key
from api.server.db import Database
from api.server.serving import uvicorn_config
from api.server.settings import Settings

POSTGRES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres-test.sh"


@dataclass
class RunningServer:
    url: str
    settings: Settings
    db: Database
    app: Any = None  # the FastAPI app, for tests that look inside (`app.state.ctx`)

    def create_key(
        self,
        *scopes: str,
        name: str = "test",
        cameras: list[str] | None = None,
        namespace_of: str | None = None,
        department: str | None = None,
    ) -> str:
        with self.db.write() as session:
            _, key = create_key(
                session,
                name,
                [Scope(s) for s in scopes],
                cameras=cameras,
                namespace_of=namespace_of,
                department=department,
            )
        return key


@contextmanager
def run_server(
    settings: Settings, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningServer]:
    """Migrate the database, then serve the real app with uvicorn on `port` (0: a free one)."""
    db = Database(settings.database_url)
    db.upgrade()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    app = create_app(settings, db)
    config = uvicorn_config(app, settings, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the intake server did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(f"http://{host}:{port}", settings, db, app)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1; yields its admin URL, stops it after."""
    directory = tempfile.mkdtemp(prefix="streetwatch-pg-")
    started = subprocess.run(
        [str(POSTGRES_SCRIPT), "start", directory], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop", directory], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """An empty database on the server of `admin_url`, dropped afterwards."""
    name = f"sw_test_{secrets.token_hex(6)}"
    url = make_url(admin_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
