"""What every request handler shares: settings, database, evidence store, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from api.server.clock import Clock, wall
from api.server.db import Database
from api.server.metrics import Metrics
from api.server.settings import Settings
from api.server.storage import EvidenceStore


@dataclass
class Context:
    settings: Settings
    db: Database
    store: EvidenceStore
    metrics: Metrics
    server_key: bytes
    # When this process began serving, and the last fleet heartbeat any API process had
    # taken then: fleet liveness does not count the time between (api/server/routes/fleet.py).
    started_at: datetime = field(default_factory=wall)
    fleet_heard_at: datetime | None = None

    @property
    def clock(self) -> Clock:
        """The server's one clock (api/server/clock.py); the database carries it."""
        return self.db.clock


def get_context(request: Request) -> Context:
    return request.app.state.ctx


Ctx = Annotated[Context, Depends(get_context)]
