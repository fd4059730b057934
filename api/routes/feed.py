"""`/v1/changes` and `/v1/evidence`: what a consumer polls and the images it fetches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from sqlalchemy import select

from api import problems
from api.auth import Dispatch
from api.context import Ctx
from api.problems import Problem
from api.schemas import ChangePage
from api.serialize import change_out
from api.tables import Change, Evidence

router = APIRouter(prefix="/v1")


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
        str | None, Query(description="`next_cursor` of the previous poll; omit to start")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ChangePage:
    """Every create, merge, observation and transition, in order, each exactly once.

    Writers commit in sequence order (see `api.db`), so a change never appears behind a
    cursor already handed out: poll with `next_cursor` and nothing is missed or repeated.
    """
    after = 0
    if cursor:
        if not cursor.isdigit():
            raise Problem(400, "Invalid cursor", kind="invalid-cursor")
        after = int(cursor)
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
def evidence(
    ctx: Ctx,
    _: Dispatch,
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The image's SHA-256")],
) -> FileResponse:
    with ctx.db.read() as session:
        record = session.get(Evidence, sha256)
    path = ctx.store.path(sha256)
    if record is None or not path.is_file():
        raise Problem(404, f"No evidence {sha256}", kind="not-found")
    return FileResponse(
        path,
        media_type=record.content_type,
        headers={"Cache-Control": "private, max-age=31536000, immutable", "ETag": f'"{sha256}"'},
    )
