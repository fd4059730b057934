"""`/v1/changes` and `/v1/evidence`: what a consumer polls and the images it fetches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from sqlalchemy import select

from api.server import problems
from api.server.auth import Dispatch
from api.server.context import Ctx
from api.server.evidence import image_response
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.schemas import ChangePage
from api.server.secrets import link_valid
from api.server.serialize import change_out
from api.server.tables import Change
from api.server.validation import sequence

Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The image's SHA-256")]

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1")


@router.get(
    "/changes",
    tags=["changes"],
    summary="Poll the change feed",
    response_model=ChangePage,
    responses=problems.responses(400, 401, 403),
)
def changes(
    ctx: Ctx,
    _: Dispatch,
    cursor: Annotated[
        str | None,
        Query(max_length=20, description="`next_cursor` of the previous poll; omit to start"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ChangePage:
    """Every create, merge, observation and transition, in order, each exactly once; and
    `webhook_disabled` events (no `case_id`), when an endpoint is disabled.

    Writers commit in sequence order (see `api.server.db`), so a change never appears behind a
    cursor already handed out: poll with `next_cursor` and nothing is missed or repeated.
    """
    after = sequence(cursor) if cursor else 0
    with ctx.db.read() as session:
        rows = list(
            session.scalars(
                select(Change).where(Change.seq > after).order_by(Change.seq).limit(limit)
            )
        )
    return ChangePage(
        changes=[change_out(c) for c in rows],
        next_cursor=str(rows[-1].seq if rows else after),
    )


@router.get(
    "/evidence/{sha256}",
    tags=["evidence"],
    summary="Fetch an evidence image",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The image"},
        **problems.responses(401, 403, 404, 422),
    },
)
def evidence(ctx: Ctx, _: Dispatch, sha256: Sha256) -> FileResponse:
    return image_response(ctx, sha256, "private, max-age=31536000, immutable")


@router.get(
    "/media/{sha256}",
    tags=["evidence"],
    summary="Fetch an evidence image by a signed link",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "The image"},
        **problems.responses(403, 404, 422),
    },
)
def media(
    ctx: Ctx,
    sha256: Sha256,
    expires: Annotated[int, Query(ge=0, le=2**40, description="Unix time the link expires")],
    signature: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+=*$")],
) -> FileResponse:
    """The links Open311 hands out as `media_url`: fetchable without a key until they
    expire, and only for the image they were made for."""
    import time

    if expires < time.time() or not link_valid(
        ctx.server_key, f"/v1/media/{sha256}", expires, signature
    ):
        raise Problem(403, "The link is invalid or has expired", kind="invalid-link")
    return image_response(ctx, sha256, "private, max-age=3600")
