"""Upgrading a database made before keys had namespaces: nothing a worker or a receiver
relies on breaks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from api.server.auth import hash_key
from api.server.db import MIGRATIONS, Database
from api.server.settings import Settings
from api.server.tables import Report, Webhook
from api.server.webhooks import new_secret
from tests.api.helpers import patch
from tests.support.api import run_server


def _upgrade_to(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_upgrade_keeps_reports_with_their_key(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    _upgrade_to(db, "0001")
    key = "sw_0123456789ab_" + "x" * 43
    t0 = datetime.now(UTC) - timedelta(hours=1)
    secret = new_secret()
    rows = {
        "api_keys": {"id": "0123456789ab", "name": "old-worker", "key_hash": hash_key(key),
                     "scopes": json.dumps(["ingest"]), "created_at": t0},
        "cases": {"seq": 1, "id": "cs_old", "type": "street_stall", "event_code": "09006",
                  "status": "reported", "origin_report_id": "inc-old", "camera_id": "cam-1",
                  "first_seen": t0, "confirmed_at": t0, "last_seen": t0, "created_at": t0,
                  "updated_at": t0},
        "reports": {"id": "inc-old", "case_seq": 1, "source": "worker", "camera_id": "cam-1",
                    "first_seen": t0, "last_seen": t0, "received_at": t0,
                    "payload": json.dumps({})},
        "changes": {"seq": 1, "case_seq": 1, "case_id": "cs_old", "kind": "created", "at": t0,
                    "actor": "key:old-worker", "api_key_id": "0123456789ab",
                    "to_status": "reported",
                    "data": json.dumps({"report_id": "inc-old", "case": {}})},
        "webhooks": {"id": "wh_old", "url": "http://127.0.0.1:9/", "secret": secret,
                     "event_types": None, "active": False, "created_at": t0},
    }  # fmt: skip
    with db.engine.begin() as conn:
        for table, row in rows.items():
            if db.is_sqlite:  # SQLite holds naive UTC, as UTCDateTime writes it
                row = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v
                       for k, v in row.items()}  # fmt: skip
            columns = ", ".join(row)
            values = ", ".join(f":{c}" for c in row)
            conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)
        if not db.is_sqlite:  # the rows above took seq 1 by hand
            for table in ("cases", "changes"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), 1)"))
    db.upgrade()
    with db.read() as session:
        [report] = session.scalars(select(Report))
        assert (report.namespace, report.id) == ("0123456789ab", "inc-old")

    settings = Settings(data_dir=tmp_path / "data", db_url=db_url)
    with run_server(settings) as server:
        with server.db.read() as session:
            stored = session.scalars(select(Webhook.secret)).one()
        assert stored.startswith("enc1:") and secret not in stored  # sealed on start
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            later = (t0 + timedelta(minutes=5)).isoformat()
            r = patch(c, "inc-old", {"last_seen": later})
            assert r.status_code == 200, r.text
            assert r.json()["changed"] is True and r.json()["case_id"] == "cs_old"
    db.dispose()


def test_the_migrations_make_the_schema_the_code_expects(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.server.tables import Base

    db = Database(db_url)
    db.upgrade()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    current, head = db.revision()
    assert current == head
    db.upgrade()  # again: nothing to do, no error
    db.dispose()
