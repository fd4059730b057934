"""`/v1/cameras`: camera health as workers report it, so dispatchers see a dead camera.

A worker (`ingest` key, bound cameras only) reports each camera's state and, now and then, a
recent thumbnail; `dispatch` keys read them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api import problems
from api.auth import Dispatch, Ingest
from api.context import Ctx
from api.contract import Storable
from api.forms import parse_json_field
from api.images import ImageError, check_image
from api.middleware import AuthFirstRoute
from api.problems import Problem
from api.routes.feed import EVIDENCE_HEADERS
from api.tables import CameraHealth, Case, Report, utcnow

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/cameras", tags=["cameras"])
CameraId = Annotated[str, Path(min_length=1, max_length=128)]
MAX_THUMBNAIL_BYTES = 512 * 1024
# A camera whose worker has said nothing for this long is shown as `silent`: the worker (or
# its link to the API) is down, and the last state reported may no longer hold.
SILENT_AFTER = timedelta(minutes=5)
CameraState = Literal["up", "reconnecting", "dead", "frozen", "scene_changed", "stopped"]


class HealthReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CameraState
    detail: Annotated[str, Field(max_length=1000), Storable] | None = None
    since: AwareDatetime | None = Field(None, description="In this state since")
    last_frame_at: AwareDatetime | None = Field(None, description="The last decoded picture")


class CameraOut(BaseModel):
    camera_id: str
    state: CameraState | Literal["unknown", "silent"] = Field(
        description="As last reported; `silent` when no report came for 5 minutes, "
        "`unknown` for a camera known only from its cases"
    )
    detail: str | None
    since: datetime | None
    last_frame_at: datetime | None
    reported_at: datetime | None
    reported_by: str | None
    thumbnail_url: str | None
    thumbnail_at: datetime | None
    cases_last_day: int


class CameraList(BaseModel):
    items: list[CameraOut]


@router.post(
    "/{camera_id}/health",
    status_code=204,
    summary="Report a camera's health",
    responses=problems.responses(400, 401, 403, 413, 422),
)
def post_health(
    ctx: Ctx,
    principal: Ingest,
    camera_id: CameraId,
    health: Annotated[str, Form(description="The `HealthReport` as JSON")],
    thumbnail: Annotated[UploadFile | None, File(description="A recent picture (JPEG)")] = None,
) -> Response:
    principal.check_camera(camera_id)
    report = parse_json_field(HealthReport, health, "health")
    image = None
    if thumbnail is not None:
        image = thumbnail.file.read(MAX_THUMBNAIL_BYTES + 1)
        if len(image) > MAX_THUMBNAIL_BYTES:
            raise Problem(413, "The thumbnail is over 512 KiB", kind="body-too-large")
        try:
            media_type = check_image(image, 4_000_000).media_type
        except ImageError as exc:
            raise Problem(422, f"The thumbnail is not an image: {exc}", kind="bad-image") from None
    now = utcnow()
    with ctx.db.write() as session:
        row = session.get(CameraHealth, camera_id)
        if row is None:
            row = CameraHealth(camera_id=camera_id)
            session.add(row)
        row.state = report.state
        row.detail = report.detail
        row.since = report.since
        row.last_frame_at = report.last_frame_at
        row.reported_at = now
        row.reported_by = principal.actor
        if image is not None:
            row.thumbnail, row.thumbnail_type, row.thumbnail_at = image, media_type, now
    return Response(status_code=204)


def cameras(session, now: datetime | None = None) -> list[CameraOut]:  # type: ignore[no-untyped-def]
    """Every camera known from health reports or from reports of cases."""
    now = now or utcnow()
    day_ago = now - timedelta(days=1)
    recent = dict(
        session.execute(
            select(Report.camera_id, func.count(func.distinct(Report.case_seq)))
            .where(Report.camera_id.is_not(None), Report.received_at >= day_ago)
            .group_by(Report.camera_id)
        ).all()
    )
    known = {
        c
        for (c,) in session.execute(
            select(Case.camera_id).where(Case.camera_id.is_not(None)).distinct()
        )
    }
    rows = {r.camera_id: r for r in session.scalars(select(CameraHealth))}
    out = []
    for camera_id in sorted(known | set(rows) | set(recent)):
        row = rows.get(camera_id)
        out.append(
            CameraOut(
                camera_id=camera_id,
                state=(row.state if now - row.reported_at < SILENT_AFTER else "silent")
                if row
                else "unknown",
                detail=row.detail if row else None,
                since=row.since if row else None,
                last_frame_at=row.last_frame_at if row else None,
                reported_at=row.reported_at if row else None,
                reported_by=row.reported_by if row else None,
                thumbnail_url=f"/v1/cameras/{camera_id}/thumbnail"
                if row and row.thumbnail
                else None,
                thumbnail_at=row.thumbnail_at if row else None,
                cases_last_day=recent.get(camera_id, 0),
            )
        )
    return out


@router.get(
    "", summary="List cameras and their health", response_model=CameraList,
    responses=problems.responses(401, 403),
)  # fmt: skip
def list_cameras(ctx: Ctx, _: Dispatch) -> CameraList:
    with ctx.db.read() as session:
        return CameraList(items=cameras(session))


def thumbnail_response(ctx: Ctx, camera_id: str) -> Response:
    with ctx.db.read() as session:
        row = session.get(CameraHealth, camera_id)
        if row is None or row.thumbnail is None:
            raise Problem(404, f"No picture of camera {camera_id}", kind="not-found")
        return Response(
            row.thumbnail,
            media_type=row.thumbnail_type or "image/jpeg",
            headers={"Cache-Control": "private, no-cache", **EVIDENCE_HEADERS},
        )


@router.get(
    "/{camera_id}/thumbnail",
    summary="A camera's recent picture",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **problems.responses(401, 403, 404)},
)
def get_thumbnail(ctx: Ctx, _: Dispatch, camera_id: CameraId) -> Response:
    return thumbnail_response(ctx, camera_id)
