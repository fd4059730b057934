"""What every request handler shares: settings, database, evidence store, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from api.db import Database
from api.metrics import Metrics
from api.settings import Settings
from api.storage import EvidenceStore
from api.tables import utcnow


@dataclass
class Context:
    settings: Settings
    db: Database
    store: EvidenceStore
    metrics: Metrics
    server_key: bytes
    # When this process began serving: fleet liveness does not count the time before it.
    started_at: datetime = field(default_factory=utcnow)


def get_context(request: Request) -> Context:
    return request.app.state.ctx


Ctx = Annotated[Context, Depends(get_context)]
