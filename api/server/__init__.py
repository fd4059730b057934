"""The intake service: FastAPI app, routes, storage, console, migrations, webhooks, Open311.

Owns everything `streetwatch serve` runs and `streetwatch migrate|prune|keys` manage (`cli`):
the app (`app`) and its routes (`routes/`: HTTP only; what two of them share lives in a
service module here, never in another route), the database (`db`, `tables`, `migrations/`),
the evidence store and who sees which image of it (`renditions`: originals to `dispatch`,
de-identified renditions to everyone else, the audit log), the review console (`console/`),
webhooks and Open311. Imports
`api.contract` and nothing from `api.client`, `detector`, `models` or `streams`.

The names below load on first use: `streetwatch` imports `api.server.cli` for every command,
and a worker's commands must not pay for (or need) FastAPI and SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.server.app import create_app
    from api.server.auth import Scope, create_key
    from api.server.db import Database
    from api.server.serving import uvicorn_config
    from api.server.settings import Settings
    from api.server.storage import EvidenceStore

_HOMES = {
    "create_app": "api.server.app",
    "Scope": "api.server.auth",
    "create_key": "api.server.auth",
    "Database": "api.server.db",
    "uvicorn_config": "api.server.serving",
    "Settings": "api.server.settings",
    "EvidenceStore": "api.server.storage",
}

__all__ = [
    "Database",
    "EvidenceStore",
    "Scope",
    "Settings",
    "create_app",
    "create_key",
    "uvicorn_config",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'api.server' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
