"""`/v1/suppressions`: the sites workers stop reporting (the review feedback loop).

Workers (an `ingest` key) fetch them, only for the cameras their key is bound to; reviewers
(a `dispatch` key) create, edit and remove them. Rejecting a case as `permitted` or
`fixture` creates one too (`POST /v1/cases/{id}/transitions` with `reason`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from api.server import problems
from api.server.auth import Credentials, Dispatch, Principal, Scope, authenticate
from api.server.context import Ctx, get_context
from api.server.evidence import camera_frame
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.suppression_store import (
    SuppressionCreate,
    SuppressionList,
    SuppressionOut,
    SuppressionPatch,
    create,
    get_row,
    list_rows,
    suppression_out,
    update,
)
from api.server.validation import check_site_box

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/suppressions", tags=["suppressions"])
SuppressionId = Annotated[str, Path(min_length=1, max_length=40)]


def _reader(request: Request, credentials: Credentials) -> Principal:
    """A worker's `ingest` key or a reviewer's `dispatch` key."""
    key = credentials.credentials if credentials else None
    with get_context(request).db.read() as session:
        try:
            return authenticate(session, key, Scope.dispatch)
        except Problem as exc:
            if exc.status_code != 403:
                raise
            return authenticate(session, key, Scope.ingest)


Reader = Annotated[Principal, Depends(_reader)]


@router.get(
    "",
    summary="List suppressions",
    response_model=SuppressionList,
    responses=problems.responses(401, 403),
)
def list_suppressions(ctx: Ctx, principal: Reader) -> SuppressionList:
    """Every suppression, newest first; an ingest key bound to cameras sees only theirs.
    Workers apply those `active`, not expired, and in their `schedule`."""
    cameras = None if Scope.dispatch.value in principal.scopes else principal.cameras
    with ctx.db.read() as session:
        return SuppressionList(items=[suppression_out(r) for r in list_rows(session, cameras)])


@router.post(
    "",
    status_code=201,
    summary="Create a suppression",
    response_model=SuppressionOut,
    responses=problems.responses(401, 403, 422),
)
def post_suppression(ctx: Ctx, _: Dispatch, body: SuppressionCreate) -> SuppressionOut:
    """The box is in pixels of the camera's frame and must lie on it, as far as the API
    knows the frame (from the camera's evidence images)."""
    with ctx.db.read() as session:
        frame = camera_frame(session, body.camera_id)
    check_site_box("body", body.bbox, frame, "suppression")
    return create(ctx, body)


@router.patch(
    "/{suppression_id}",
    summary="Change a suppression",
    response_model=SuppressionOut,
    responses=problems.responses(401, 403, 404, 422),
)
def patch_suppression(
    ctx: Ctx, _: Dispatch, suppression_id: SuppressionId, body: SuppressionPatch
) -> SuppressionOut:
    return update(ctx, suppression_id, body)


@router.delete(
    "/{suppression_id}",
    status_code=204,
    summary="Remove a suppression",
    responses=problems.responses(401, 403, 404),
)
def delete_suppression(ctx: Ctx, _: Dispatch, suppression_id: SuppressionId) -> Response:
    with ctx.db.write() as session:
        session.delete(get_row(session, suppression_id))
    return Response(status_code=204)
