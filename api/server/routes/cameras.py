"""`/v1/cameras`: camera health as workers report it, so dispatchers see a dead camera.

A worker (`ingest` key, bound cameras only) reports each camera's state and, now and then, a
recent thumbnail; `dispatch` keys read them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.contract import Storable
from api.server import problems
from api.server.auth import Dispatch, Ingest
from api.server.camera_health import CameraList, CameraState, cameras, thumbnail_response
from api.server.context import Ctx
from api.server.forms import parse_json_field
from api.server.images import ImageError, check_image
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.tables import CameraHealth

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/cameras", tags=["cameras"])
CameraId = Annotated[str, Path(min_length=1, max_length=128)]
MAX_THUMBNAIL_BYTES = 512 * 1024


class HealthReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CameraState
    detail: Annotated[str, Field(max_length=1000), Storable] | None = None
    since: AwareDatetime | None = Field(None, description="In this state since")
    last_frame_at: AwareDatetime | None = Field(None, description="The last decoded picture")


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
    now = ctx.clock()
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


@router.get(
    "", summary="List cameras and their health", response_model=CameraList,
    responses=problems.responses(401, 403),
)  # fmt: skip
def list_cameras(ctx: Ctx, _: Dispatch) -> CameraList:
    with ctx.db.read() as session:
        return CameraList(items=cameras(session, ctx.clock()))


@router.get(
    "/{camera_id}/thumbnail",
    summary="A camera's recent picture",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **problems.responses(401, 403, 404)},
)
def get_thumbnail(ctx: Ctx, _: Dispatch, camera_id: CameraId) -> Response:
    return thumbnail_response(ctx, camera_id)
