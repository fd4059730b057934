"""`streetwatch serve` and `streetwatch keys …`: run the intake service and manage its keys."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.settings import Settings, default_data_dir

if TYPE_CHECKING:
    from api.auth import Scope
    from api.db import Database

# The service's modules (FastAPI, SQLAlchemy, Alembic) load inside the commands, so that
# `streetwatch --help` and the worker's commands don't pay for them.


def _storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory: evidence and the SQLite database "
        "(env STREETWATCH_DATA; default ~/.local/share/streetwatch)",
    )
    p.add_argument(
        "--db",
        default=None,
        help="database URL, e.g. postgresql://user@host/db "
        "(env STREETWATCH_DB; default SQLite in the data directory)",
    )


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return Settings(
        data_dir=args.data_dir or default_data_dir(),
        db_url=args.db or os.environ.get("STREETWATCH_DB") or None,
        **overrides,
    )


def _database(args: argparse.Namespace) -> Database:
    from api.db import Database

    db = Database(_settings(args).database_url)
    db.upgrade()
    return db


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.codes import CodeTable
    from api.db import Database

    overrides: dict[str, Any] = {}
    if args.codes:
        overrides["codes"] = CodeTable.load(args.codes)
    settings = _settings(args, **overrides)
    db = Database(settings.database_url)
    db.upgrade()  # the schema is always at the newest migration before serving
    uvicorn.run(create_app(settings, db), host=args.host, port=args.port, log_level="info")
    return 0


def keys_create(args: argparse.Namespace) -> int:
    from api.auth import create_key

    db = _database(args)
    with db.write() as session:
        record, key = create_key(session, args.name, args.scope)
        session.flush()
        print(f"Created key {record.id} ({args.name}) with scopes {', '.join(record.scopes)}.")
        print("Store it now; it is shown only this once:")
        print(key)
    db.dispose()
    return 0


def keys_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from api.tables import ApiKey

    db = _database(args)
    with db.read() as session:
        for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            row = {"id": k.id, "name": k.name, "scopes": k.scopes, "state": state}
            print(json.dumps(row, ensure_ascii=False))
    db.dispose()
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    from api.tables import ApiKey, utcnow

    db = _database(args)
    with db.write() as session:
        record = session.get(ApiKey, args.key_id)
        if record is None:
            print(f"No key {args.key_id}")
            return 1
        record.revoked_at = record.revoked_at or utcnow()
    db.dispose()
    print(f"Revoked key {args.key_id}.")
    return 0


def _scopes(value: str) -> list[Scope]:
    from api.auth import Scope

    try:
        return [Scope(s.strip()) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"scopes are {', '.join(s.value for s in Scope)}"
        ) from None


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("serve", help="run the case intake API")
    _storage_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--codes", type=Path, help="event-code table (YAML) replacing the default")
    p.set_defaults(func=serve)

    keys = subparsers.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    c = ksub.add_parser("create", help="create a key and print it (once)")
    _storage_args(c)
    c.add_argument(
        "--scope",
        type=_scopes,
        action="extend",
        required=True,
        help="ingest, dispatch and/or admin (repeat or comma-separate)",
    )
    c.add_argument("--name", default="unnamed", help="who or what the key is for")
    c.set_defaults(func=keys_create)
    ls = ksub.add_parser("list", help="list keys (never the keys themselves)")
    _storage_args(ls)
    ls.set_defaults(func=keys_list)
    rv = ksub.add_parser("revoke", help="revoke a key by id")
    _storage_args(rv)
    rv.add_argument("key_id")
    rv.set_defaults(func=keys_revoke)
