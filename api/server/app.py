"""The intake service: `create_app(settings)` builds the FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.server import problems
from api.server.context import Context
from api.server.db import Database
from api.server.lifecycle import table_markdown
from api.server.metrics import Metrics
from api.server.middleware import BodyLimit, RequestContext, RequestGuard
from api.server.retention import prune
from api.server.routes import admin, cases, feed, open311, ops
from api.server.routes.fleet import last_heartbeat
from api.server.secrets import load_server_key
from api.server.settings import Settings
from api.server.storage import EvidenceStore
from api.server.webhooks import Dispatcher, seal_plaintext_secrets

log = logging.getLogger(__name__)

DESCRIPTION = f"""
Workers post incidents (street stalls, illegal parking, exposed garbage) as cases; the
city's dispatch platform reads, routes and closes them.

**Authentication**: `Authorization: Bearer <key>`. Scopes: `ingest` (post and update cases),
`open311` (post Open311 service requests), `dispatch` (read cases, evidence and the change
feed; transition cases), `admin` (keys and webhooks). No or unknown key: 401; a key without
the scope: 403. A request with a body is authenticated before its body is read. An ingest
key sees and updates only its own reports (report ids and Idempotency-Keys are per key),
and only for the cameras it is bound to, if it is bound.

**Errors** are RFC 9457 problem details (`application/problem+json`), except under
`/open311/`, which uses Open311's error format.

**Lifecycle**:

{table_markdown()}

**Change feed and webhooks**: `GET /v1/changes` lists every create, merge, observation and
transition in order, and the disabling of a webhook endpoint; webhooks receive the same
events, signed per the Standard Webhooks spec, retried over more than three days with
jitter, honouring `Retry-After`; `410 Gone` or days of failures disable an endpoint.

**Merging**: reports merge by the object's own `position` (from calibrated cameras) within
the merge distance, or on one camera by overlapping boxes; never by the cameras' locations.
"""

TAGS = [
    {"name": "cases", "description": "Intake from workers; reading and lifecycle"},
    {"name": "changes", "description": "The change feed"},
    {"name": "evidence", "description": "Evidence images, by sha256"},
    {"name": "keys", "description": "API keys (admin)"},
    {"name": "webhooks", "description": "Webhook subscriptions and delivery log (admin)"},
    {"name": "open311", "description": "Open311 GeoReport v2 view"},
    {"name": "operations", "description": "Health, readiness, metrics"},
    {"name": "suppressions", "description": "Sites workers stop reporting (review feedback)"},
    {"name": "cameras", "description": "Camera health as workers report it"},
    {"name": "fleet", "description": "Fleet cameras, worker heartbeats and assignment"},
    {"name": "desk", "description": "Grid, routing, departments, deadlines and statistics"},
]


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """The application; the database must already be migrated (`Database.upgrade`)."""
    db = db or Database(settings.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    server_key = load_server_key(secret, settings.data_dir)
    ctx = Context(
        settings,
        db,
        EvidenceStore(settings.evidence_dir),
        Metrics(db_backend="sqlite" if db.is_sqlite else "postgresql"),
        server_key,
    )

    async def _prune_every(interval_s: float, stop: asyncio.Event) -> None:
        """The retention policy, once a while after start and then every `interval_s`; in
        every replica (each run is idempotent, under the write lock)."""
        delay = min(60.0, interval_s)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(prune, db, settings, ctx.store)
            except Exception:
                log.exception("pruning failed; trying again later")
            delay = interval_s

    async def _watch_deadlines(stop: asyncio.Event) -> None:
        """Overdue cases announced and counted every `overdue_poll_s` on the context's clock
        (in every replica: the announcement is made once, under the write lock)."""
        from api.server.desk import check_deadlines

        while not stop.is_set():
            try:
                await asyncio.to_thread(check_deadlines, db, ctx.metrics)
            except Exception:
                log.exception("checking deadlines failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.overdue_poll_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.started_at = ctx.clock()
        ctx.fleet_heard_at = await asyncio.to_thread(last_heartbeat, db)
        await asyncio.to_thread(seal_plaintext_secrets, db, server_key)
        dispatcher = Dispatcher(db, settings, ctx.metrics, server_key)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(dispatcher.run(stop))]
        if settings.prune_interval_s:
            tasks.append(asyncio.create_task(_prune_every(settings.prune_interval_s, stop)))
        tasks.append(asyncio.create_task(_watch_deadlines(stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await dispatcher.aclose()
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
    # The review console and its feedback loop (issue 13).
    from api.server.console import pages as console
    from api.server.routes import cameras, suppressions

    for module in (suppressions, cameras):
        app.include_router(module.router)
    from api.server.routes import fleet  # camera fleets (issue 17)

    app.include_router(fleet.router)
    from api.server.routes import desk  # the dispatch desk (issue 27)

    app.include_router(desk.router)
    console.install(app)
    # Added innermost first: RequestContext sees every request.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        total_timeout_s=settings.body_timeout_s,
        idle_timeout_s=settings.body_idle_timeout_s,
    )
    app.add_middleware(RequestGuard)
    app.add_middleware(RequestContext, metrics=ctx.metrics, log_requests=settings.access_log)

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
