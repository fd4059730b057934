"""What every request handler shares: settings, database, evidence store, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

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


def get_context(request: Request) -> Context:
    return request.app.state.ctx


Ctx = Annotated[Context, Depends(get_context)]
