"""`/v1/suppressions`: the sites workers stop reporting (the review feedback loop).

Workers (an `ingest` key) fetch them, only for the cameras their key is bound to; reviewers
(a `dispatch` key) create, edit and remove them. Rejecting a case as `permitted` or
`fixture` creates one too (`POST /v1/cases/{id}/transitions` with `reason`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api import problems
from api.auth import Credentials, Dispatch, Principal, Scope, authenticate
from api.context import Ctx, get_context
from api.contract import Id, IncidentType, Pixel
from api.evidence import camera_frame
from api.middleware import AuthFirstRoute
from api.problems import Problem
from api.schemas import Name, Note
from api.suppress import RejectReason, Schedule, SuppressionRule
from api.suppressions import get_row, list_rows, new_id
from api.tables import Suppression, utcnow
from api.validation import check_site_box

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


class SuppressionOut(SuppressionRule):
    case_id: str | None = Field(description="The rejected case that made it, if any")
    note: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class SuppressionList(BaseModel):
    items: list[SuppressionOut]


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_id: Id
    zone_id: Id | None = None
    type: IncidentType
    bbox: Annotated[list[Pixel], Field(min_length=4, max_length=4)]
    min_iou: float = Field(0.3, gt=0, le=1)
    reason: RejectReason = RejectReason.fixture
    note: Note | None = None
    expires_at: AwareDatetime | None = None
    schedule: Schedule | None = None
    actor: Name


class SuppressionPatch(BaseModel):
    """Only the fields given change; `null` clears `expires_at`, `schedule` or `note`."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    min_iou: float | None = Field(None, gt=0, le=1)
    note: Note | None = None
    expires_at: AwareDatetime | None = None
    schedule: Schedule | None = None


def suppression_out(row: Suppression) -> SuppressionOut:
    from api.suppressions import rule_of

    return SuppressionOut(
        **rule_of(row).model_dump(),
        case_id=row.case_id,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


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


def create(ctx: Ctx, body: SuppressionCreate) -> SuppressionOut:
    rule = SuppressionRule(id="new", **body.model_dump(exclude={"note", "actor"}))
    now = utcnow()
    with ctx.db.write() as session:
        row = Suppression(
            id=new_id(),
            camera_id=rule.camera_id,
            zone_id=rule.zone_id,
            type=rule.type.value,
            bbox=rule.bbox,
            min_iou=rule.min_iou,
            reason=rule.reason.value,
            case_id=None,
            note=body.note,
            expires_at=rule.expires_at,
            schedule=rule.schedule.model_dump() if rule.schedule else None,
            active=True,
            created_by=body.actor,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return suppression_out(row)


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


def update(ctx: Ctx, suppression_id: str, body: SuppressionPatch) -> SuppressionOut:
    given = body.model_fields_set
    with ctx.db.write() as session:
        row = get_row(session, suppression_id)
        if "active" in given and body.active is not None:
            row.active = body.active
        if "min_iou" in given and body.min_iou is not None:
            row.min_iou = body.min_iou
        if "note" in given:
            row.note = body.note
        if "expires_at" in given:
            row.expires_at = body.expires_at
        if "schedule" in given:
            row.schedule = body.schedule.model_dump() if body.schedule else None
        row.updated_at = utcnow()
        return suppression_out(row)


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
