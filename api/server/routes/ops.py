"""Health, readiness and metrics, for the orchestrator and Prometheus (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from api.server import problems
from api.server.context import Ctx
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem

router = APIRouter(route_class=AuthFirstRoute, tags=["operations"])


@router.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers", responses=problems.responses(503))
def readyz(ctx: Ctx) -> dict[str, str]:
    try:
        ctx.db.ping()
    except SQLAlchemyError as exc:
        raise Problem(
            503, f"Database unreachable: {type(exc).__name__}", kind="not-ready"
        ) from None
    return {"status": "ready"}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type=ctx.metrics.content_type)
