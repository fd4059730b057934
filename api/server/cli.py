"""`streetwatch serve`, `migrate`, `prune` and `keys …`: run the intake service, bring its
schema up to date, apply its retention policy, and manage its keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.server.auth import Scope
    from api.server.db import Database
    from api.server.settings import Settings

# The service's modules (FastAPI, SQLAlchemy, Alembic, pydantic-settings) load inside the
# commands, so that `streetwatch --help` and the worker's commands don't pay for them, and
# an edge worker installed without the `server` extra never needs them.

# Flags whose names predate the settings: flag -> setting.
_ALIASES = {"db": "db_url", "codes": "codes_file"}


class CommandError(Exception):
    """A problem the operator can fix, said in one line."""


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


def _settings(values: dict[str, Any]) -> Settings:
    from pydantic import ValidationError

    from api.server.settings import Settings

    given = {_ALIASES.get(k, k): v for k, v in values.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        faults = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise CommandError(f"invalid settings: {faults}") from None
    except (OSError, ValueError) as exc:  # e.g. an unreadable --codes file
        raise CommandError(f"invalid settings: {exc}") from None


def _quiet_migrations() -> None:
    import logging

    for name in ("alembic", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _open_database(url: str, migrate: bool = True) -> Database:
    """The database at `url`, migrated (or, with `migrate` off, checked to be current);
    any failure is one line, not a traceback."""
    _quiet_migrations()  # before Alembic is imported: it logs its plugins as it loads
    from sqlalchemy.exc import SQLAlchemyError

    from api.server.db import Database

    shown = _hide_password(url)
    try:
        db = Database(url)
    except (SQLAlchemyError, ValueError, ImportError, OSError) as exc:
        raise CommandError(f"cannot use the database URL {shown}: {_reason(exc)}") from None
    try:
        if migrate:
            db.upgrade()
        else:
            current, head = db.revision()
            if current != head:
                db.dispose()
                raise CommandError(
                    f"the database {shown} is at migration {current or '(none)'}, this "
                    f"version needs {head}: run `streetwatch migrate` first"
                )
    except (SQLAlchemyError, OSError) as exc:
        db.dispose()
        raise CommandError(f"cannot open the database {shown}: {_reason(exc)}") from None
    return db


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.strerror:
        return f"{orig.strerror}: {orig.filename}" if orig.filename else orig.strerror
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _database(args: argparse.Namespace) -> Database:
    settings = _settings({"data_dir": args.data_dir, "db_url": args.db})
    return _open_database(settings.database_url)


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CommandError as exc:
            print(f"streetwatch {args.command}: {exc}", file=sys.stderr)
            return 2

    return run


def serve(args: argparse.Namespace) -> int:
    from api.server import logs

    settings = _settings({name: getattr(args, f"set_{name}") for name in _serve_fields()})
    logs.configure(settings.log_format, settings.log_level)
    # Migrated to the newest before serving (under a lock: replicas may start together),
    # unless the deployment runs `streetwatch migrate` itself.
    db = _open_database(settings.database_url, migrate=settings.migrate_on_start)
    import uvicorn

    from api.server.app import create_app
    from api.server.serving import uvicorn_config

    uvicorn.Server(uvicorn_config(create_app(settings, db), settings)).run()
    return 0


def migrate(args: argparse.Namespace) -> int:
    """Bring the schema to the newest migration, then exit: for a deployment's init step."""
    settings = _settings({"data_dir": args.data_dir, "db_url": args.db})
    db = _open_database(settings.database_url)
    try:
        current, _ = db.revision()
    finally:
        db.dispose()
    print(f"The database {_hide_password(settings.database_url)} is at migration {current}.")
    return 0


_PRUNE_FIELDS = (
    "idempotency_ttl_s",
    "retention_closed_days",
    "retention_rejected_days",
    "retention_duplicate_days",
    "retention_originals_days",
)


def prune(args: argparse.Namespace) -> int:
    """Apply the retention policy once (`serve` does it every `prune_interval_s`)."""
    from api.server.retention import prune as run_prune
    from api.server.storage import EvidenceStore

    values = {"data_dir": args.data_dir, "db_url": args.db}
    values |= {name: getattr(args, f"set_{name}") for name in _PRUNE_FIELDS}
    settings = _settings(values)
    db = _open_database(settings.database_url)
    try:
        pruned = run_prune(db, settings, EvidenceStore(settings.evidence_dir))
    finally:
        db.dispose()
    print(json.dumps(pruned.as_dict()))
    return 0


def keys_create(args: argparse.Namespace) -> int:
    from api.server.auth import create_key
    from api.server.problems import Problem

    db = _database(args)
    try:
        with db.write() as session:
            record, key = create_key(
                session,
                args.name,
                args.scope,
                cameras=args.camera or None,
                namespace_of=args.namespace_of,
                department=args.department,
            )
            session.flush()
    except Problem as exc:
        raise CommandError(str(exc.detail)) from None
    finally:
        db.dispose()
    print(f"Created key {record.id} ({args.name}) with scopes {', '.join(record.scopes)}.")
    if record.cameras is not None:
        print(f"It may report only for cameras {', '.join(record.cameras)}.")
    print("Store it now; it is shown only this once:")
    print(key)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from api.server.tables import ApiKey

    db = _database(args)
    with db.read() as session:
        for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            row = {
                "id": k.id,
                "name": k.name,
                "scopes": k.scopes,
                "cameras": k.cameras,
                "namespace": k.namespace or k.id,
                "state": state,
            }
            print(json.dumps(row, ensure_ascii=False))
    db.dispose()
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    from api.server.clock import now_in
    from api.server.tables import ApiKey

    db = _database(args)
    with db.write() as session:
        record = session.get(ApiKey, args.key_id)
        if record is None:
            print(f"No key {args.key_id}", file=sys.stderr)
            return 1
        record.revoked_at = record.revoked_at or now_in(session)
    db.dispose()
    print(f"Revoked key {args.key_id}.")
    return 0


def desk_import(args: argparse.Namespace) -> int:
    """Load the grid (GeoJSON) or the routing table (YAML or JSON) into the database."""
    import yaml

    from api.server.desk import import_grid, import_routing
    from api.server.problems import Problem

    try:
        text = Path(args.file).read_text(encoding="utf-8")
        document = json.loads(text) if args.what == "grid" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise CommandError(f"cannot read {args.file}: {_reason(exc)}") from None
    db = _database(args)
    try:
        with db.write() as session:
            if args.what == "grid":
                cells = import_grid(session, document, "cli")
                done = f"{len(cells)} grid cells"
            else:
                table = import_routing(session, document, "cli")
                done = f"{len(table.routes)} routes and {len(table.deadlines)} deadlines"
    except Problem as exc:
        raise CommandError(f"{args.file}: {exc.detail}") from None
    finally:
        db.dispose()
    print(f"Imported {done} from {args.file}.")
    return 0


def _scopes(value: str) -> list[Scope]:
    from api.server.auth import Scope

    try:
        return [Scope(s.strip()) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"scopes are {', '.join(s.value for s in Scope)}"
        ) from None


def _serve_fields() -> list[str]:
    from api.server.settings import Settings

    return [name for name in Settings.model_fields if name != "codes"]


def _serve_args(p: argparse.ArgumentParser) -> None:
    """A flag for every setting, named after it; each also reads STREETWATCH_<NAME>."""
    from api.server.settings import Settings

    flags = {"data_dir": ["--data-dir"], "db_url": ["--db", "--db-url"]}
    flags["codes_file"] = ["--codes", "--codes-file"]
    for name in _serve_fields():
        field = Settings.model_fields[name]
        env = {"data_dir": "STREETWATCH_DATA", "db_url": "STREETWATCH_DB"}.get(
            name, f"STREETWATCH_{name.upper()}"
        )
        default = "" if field.is_required() else f"; default {_default(field)}"
        help_ = f"{field.description or name.replace('_', ' ')} (env {env}{default})"
        names = flags.get(name, [f"--{name.replace('_', '-')}"])
        if field.annotation is bool:
            p.add_argument(
                *names, dest=f"set_{name}", default=None, action=argparse.BooleanOptionalAction,
                help=help_,
            )  # fmt: skip
        else:
            p.add_argument(*names, dest=f"set_{name}", default=None, metavar="VALUE", help=help_)


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return "computed"
    value = field.default
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "none"
    return "none" if value is None else str(value).replace("%", "%%")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("serve", help="run the case intake API")
    try:
        _serve_args(p)
    except ImportError as exc:  # an edge install, without the `server` extra
        missing = exc.name

        def unavailable(_: argparse.Namespace) -> int:
            print(
                f"streetwatch serve needs the server extra ({missing} is missing): "
                "pip install 'streetwatch[server]'",
                file=sys.stderr,
            )
            return 2

        p.set_defaults(func=unavailable)
    else:
        p.set_defaults(func=_guarded(serve))

    m = subparsers.add_parser(
        "migrate",
        help="bring the intake database's schema up to date (safe beside running replicas)",
    )
    _storage_args(m)
    m.set_defaults(func=_guarded(migrate))

    pr = subparsers.add_parser(
        "prune",
        help="apply the retention policy: expired Idempotency-Keys, old final cases, the "
        "original evidence of final cases",
    )
    _storage_args(pr)
    for name in _PRUNE_FIELDS:
        pr.add_argument(
            f"--{name.replace('_', '-')}",
            dest=f"set_{name}",
            default=None,
            metavar="VALUE",
            help=f"(env STREETWATCH_{name.upper()})",
        )
    pr.set_defaults(func=_guarded(prune))

    keys = subparsers.add_parser("keys", help="manage API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    c = ksub.add_parser("create", help="create a key and print it (once)")
    _storage_args(c)
    c.add_argument(
        "--scope",
        type=_scopes,
        action="extend",
        required=True,
        help="ingest, open311, dispatch, admin, fleet, department and/or review "
        "(repeat or comma-separate)",
    )
    c.add_argument("--name", default="unnamed", help="who or what the key is for")
    c.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="ID",
        help="bind an ingest key to this camera (repeat; shell patterns like 'north-*' "
        "allowed); default: any camera",
    )
    c.add_argument(
        "--namespace-of",
        metavar="KEY_ID",
        help="continue the reports and Idempotency-Keys of this key (when rotating a key)",
    )
    c.add_argument(
        "--department",
        metavar="NAME",
        help="the department a 'department' key acts for: it sees and resolves only the "
        "cases dispatched to it",
    )
    c.set_defaults(func=_guarded(keys_create))
    ls = ksub.add_parser("list", help="list keys (never the keys themselves)")
    _storage_args(ls)
    ls.set_defaults(func=_guarded(keys_list))
    rv = ksub.add_parser("revoke", help="revoke a key by id")
    _storage_args(rv)
    rv.add_argument("key_id")
    rv.set_defaults(func=_guarded(keys_revoke))

    desk = subparsers.add_parser("desk", help="the dispatch desk: the city's grid and routing")
    dsub = desk.add_subparsers(dest="desk_command", required=True, metavar="ACTION")
    for what, help_ in (
        ("grid", "replace the grid cells (单元网格) with a GeoJSON FeatureCollection"),
        ("routing", "replace the routing table (departments, deadlines, calendar): YAML/JSON"),
    ):
        d = dsub.add_parser(what, help=help_)
        _storage_args(d)
        d.add_argument("file", help="the file to import")
        d.set_defaults(func=_guarded(desk_import), what=what)
