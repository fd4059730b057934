"""The intake service: `create_app(settings)` builds the FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import problems
from api.context import Context
from api.db import Database
from api.lifecycle import table_markdown
from api.metrics import Metrics
from api.middleware import BodyLimit, RequestMetrics
from api.routes import admin, cases, feed, open311, ops
from api.settings import Settings
from api.storage import EvidenceStore
from api.webhooks import Dispatcher

DESCRIPTION = f"""
Workers post incidents (street stalls, illegal parking, exposed garbage) as cases; the
city's dispatch platform reads, routes and closes them.

**Authentication**: `Authorization: Bearer <key>`. Scopes: `ingest` (post and update cases),
`dispatch` (read cases, evidence and the change feed; transition cases), `admin` (keys and
webhooks). No or unknown key: 401; a key without the scope: 403.

**Errors** are RFC 9457 problem details (`application/problem+json`), except under
`/open311/`, which uses Open311's error format.

**Lifecycle**:

{table_markdown()}

**Change feed and webhooks**: `GET /v1/changes` lists every create, merge, observation and
transition in order; webhooks receive the same events, signed per the Standard Webhooks spec.
"""

TAGS = [
    {"name": "cases", "description": "Intake from workers; reading and lifecycle"},
    {"name": "changes", "description": "The change feed"},
    {"name": "evidence", "description": "Evidence images, by sha256"},
    {"name": "keys", "description": "API keys (admin)"},
    {"name": "webhooks", "description": "Webhook subscriptions and delivery log (admin)"},
    {"name": "open311", "description": "Open311 GeoReport v2 view"},
    {"name": "operations", "description": "Health, readiness, metrics"},
]


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """The application; the database must already be migrated (`Database.upgrade`)."""
    db = db or Database(settings.database_url)
    ctx = Context(settings, db, EvidenceStore(settings.evidence_dir), Metrics())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        dispatcher = Dispatcher(db, settings, ctx.metrics)
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task
            dispatcher.close()
            db.dispose()

    app = FastAPI(
        title="StreetWatch case intake",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    problems.install(app)
    for module in (cases, feed, admin, open311, ops):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=ctx.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            problems.fix_openapi(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
