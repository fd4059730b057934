"""Cameras as dispatchers see them: each one's last reported health and recent picture.

Shared by `GET /v1/cameras` and the console's cameras page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.server.context import Context
from api.server.evidence import EVIDENCE_HEADERS
from api.server.problems import Problem
from api.server.tables import CameraHealth, Case, Report

# A camera whose worker has said nothing for this long is shown as `silent`: the worker (or
# its link to the API) is down, and the last state reported may no longer hold.
SILENT_AFTER = timedelta(minutes=5)
CameraState = Literal["up", "reconnecting", "dead", "frozen", "scene_changed", "stopped"]


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


def cameras(session, now: datetime) -> list[CameraOut]:  # type: ignore[no-untyped-def]
    """Every camera known from health reports or from reports of cases."""
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


def thumbnail_response(ctx: Context, camera_id: str) -> Response:
    with ctx.db.read() as session:
        row = session.get(CameraHealth, camera_id)
        if row is None or row.thumbnail is None:
            raise Problem(404, f"No picture of camera {camera_id}", kind="not-found")
        return Response(
            row.thumbnail,
            media_type=row.thumbnail_type or "image/jpeg",
            headers={"Cache-Control": "private, no-cache", **EVIDENCE_HEADERS},
        )
