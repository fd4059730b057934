"""`/v1/fleet`: camera definitions for a fleet of workers, their heartbeats and assignment,
each camera's open sites handed from one worker to the next, and what the caller's key
reported for a camera (see api/contract/fleet.py).

Liveness (a heartbeat within the TTL) does not count the time this API process was down: for
one TTL after it starts, a worker heard within the TTL before the last heartbeat taken before
the start still counts as live, so a restart does not move cameras off healthy workers that
could not reach it meanwhile.

`admin` keys edit the cameras and read the fleet; `fleet` keys (workers) heartbeat, receive
their cameras and hand over camera state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.contract import CaseReport
from api.contract.fleet import (
    AssignedCamera,
    Assignment,
    FleetCameraIn,
    Heartbeat,
    ReportedIncident,
    ReportedIncidents,
    owner,
    share,
)
from api.server import problems
from api.server.auth import Admin, Fleet
from api.server.context import Context, Ctx
from api.server.db import Database
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.tables import FleetCamera, FleetCameraState, FleetWorker, Report

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/fleet", tags=["fleet"])
CameraId = Annotated[str, Path(min_length=1, max_length=128)]
WorkerId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
MAX_STATE_BYTES = 32 * 1024 * 1024
MAX_REPORTS = 1000  # a camera's reports in one answer, newest first
REPORTS_WINDOW = timedelta(hours=24)  # older handed-over state is not resumed (site_store)


class FleetCameraOut(BaseModel):
    camera_id: str
    definition: dict
    updated_at: datetime
    updated_by: str
    owner: str | None  # the live worker it belongs to now
    running_on: list[str]  # the live workers that report running it
    state_saved_at: datetime | None


class FleetCameraList(BaseModel):
    items: list[FleetCameraOut]


class FleetWorkerOut(BaseModel):
    worker_id: str
    started_at: datetime
    last_seen: datetime
    live: bool
    running: list[str]


class FleetWorkerList(BaseModel):
    items: list[FleetWorkerOut]


# A worker that left cleanly is marked by a last heartbeat before its start: never live.
_heard = FleetWorker.last_seen >= FleetWorker.started_at


def last_heartbeat(db: Database) -> datetime | None:
    """The newest heartbeat the fleet table holds (taken as this process starts)."""
    with db.read() as session:
        return session.scalar(select(func.max(FleetWorker.last_seen)).where(_heard))


def _since(ctx: Context, now: datetime) -> datetime:
    """The oldest heartbeat of a live worker: within the TTL, not counting the time before
    this process started: for one TTL after it, a worker heard within the TTL before the
    last heartbeat taken before the start is live too (those that were live then)."""
    ttl = timedelta(seconds=ctx.settings.fleet_worker_ttl_s)
    since = now - ttl
    if now - ctx.started_at < ttl and ctx.fleet_heard_at is not None:
        since = min(since, ctx.fleet_heard_at - ttl)
    return since


def _live(session: Session, ctx: Context, now: datetime) -> dict[str, FleetWorker]:
    """Each live worker (see `_since`)."""
    since = _since(ctx, now)
    return {
        w.worker_id: w
        for w in session.scalars(select(FleetWorker).where(FleetWorker.last_seen >= since, _heard))
    }


@router.put(
    "/cameras/{camera_id}",
    summary="Define or replace a fleet camera",
    response_model=AssignedCamera,
    responses=problems.responses(400, 401, 403, 422),
)
def put_camera(
    ctx: Ctx, principal: Admin, camera_id: CameraId, body: FleetCameraIn
) -> AssignedCamera:
    given = body.definition.get("id", camera_id)
    if given != camera_id:
        raise Problem(422, f"The definition's id {given!r} is not {camera_id!r}", kind="invalid")
    if not isinstance(body.definition.get("source"), str):
        raise Problem(422, "The definition needs a `source` (an rtsp:// url)", kind="invalid")
    now = ctx.clock()
    with ctx.db.write() as session:
        row = session.get(FleetCamera, camera_id)
        if row is None:
            row = FleetCamera(camera_id=camera_id)
            session.add(row)
        row.definition = {**body.definition, "id": camera_id}
        row.updated_at, row.updated_by = now, principal.actor
        return AssignedCamera(camera_id=camera_id, definition=row.definition, updated_at=now)


@router.delete(
    "/cameras/{camera_id}",
    status_code=204,
    summary="Remove a fleet camera (its worker stops it at its next heartbeat)",
    responses=problems.responses(401, 403, 404),
)
def delete_camera(ctx: Ctx, _: Admin, camera_id: CameraId) -> Response:
    with ctx.db.write() as session:
        row = session.get(FleetCamera, camera_id)
        if row is None:
            raise Problem(404, f"No fleet camera {camera_id}", kind="not-found")
        session.delete(row)
        session.execute(delete(FleetCameraState).where(FleetCameraState.camera_id == camera_id))
    return Response(status_code=204)


@router.get(
    "/cameras", summary="List fleet cameras, their owners and who runs them",
    response_model=FleetCameraList, responses=problems.responses(401, 403),
)  # fmt: skip
def list_cameras(ctx: Ctx, _: Admin) -> FleetCameraList:
    now = ctx.clock()
    with ctx.db.read() as session:
        live = _live(session, ctx, now)
        saved = dict(
            session.execute(select(FleetCameraState.camera_id, FleetCameraState.saved_at)).all()
        )
        rows = session.scalars(select(FleetCamera).order_by(FleetCamera.camera_id))
        return FleetCameraList(
            items=[
                FleetCameraOut(
                    camera_id=r.camera_id,
                    definition=r.definition,
                    updated_at=r.updated_at,
                    updated_by=r.updated_by,
                    owner=owner(r.camera_id, live),
                    running_on=sorted(w for w, row in live.items() if r.camera_id in row.running),
                    state_saved_at=saved.get(r.camera_id),
                )
                for r in rows
            ]
        )


@router.get(
    "/workers", summary="List fleet workers and what they run",
    response_model=FleetWorkerList, responses=problems.responses(401, 403),
)  # fmt: skip
def list_workers(ctx: Ctx, _: Admin) -> FleetWorkerList:
    now = ctx.clock()
    since = _since(ctx, now)
    with ctx.db.read() as session:
        rows = session.scalars(select(FleetWorker).order_by(FleetWorker.worker_id))
        return FleetWorkerList(
            items=[
                FleetWorkerOut(
                    worker_id=w.worker_id,
                    started_at=w.started_at,
                    last_seen=w.last_seen,
                    live=since <= w.last_seen >= w.started_at,
                    running=list(w.running),
                )
                for w in rows
            ]
        )


@router.post(
    "/workers/{worker_id}/heartbeat",
    summary="A worker's heartbeat: what it runs; the answer is what it should run",
    response_model=Assignment,
    responses=problems.responses(400, 401, 403, 422),
)
def heartbeat(ctx: Ctx, _: Fleet, worker_id: WorkerId, body: Heartbeat) -> Assignment:
    now = ctx.clock()
    ttl_s = ctx.settings.fleet_worker_ttl_s
    with ctx.db.write() as session:
        row = session.get(FleetWorker, worker_id)
        if row is None or now - row.last_seen > timedelta(seconds=ttl_s):
            if row is None:
                row = FleetWorker(worker_id=worker_id, assigned=[])
                session.add(row)
            row.started_at = now  # (back) in the fleet from now
        row.last_seen, row.running = now, sorted(set(body.running))
        if body.leaving:  # no longer live (see `_heard`): its cameras move now
            row.started_at, row.last_seen = now, now - timedelta(seconds=ttl_s + 1)
            row.running, row.assigned = [], []
            return Assignment(cameras=[], live_workers=len(_live(session, ctx, now)), ttl_s=ttl_s)
        session.flush()
        live = _live(session, ctx, now)
        cameras = {c.camera_id: c for c in session.scalars(select(FleetCamera))}
        # Another worker holds what it runs and what it was last given (it may be starting
        # it): a camera moves only once its holder has let it go on both counts.
        held = {w: [*r.running, *(r.assigned if w != worker_id else [])] for w, r in live.items()}
        mine = share(worker_id, sorted(cameras), held)
        row.assigned = mine
        return Assignment(
            cameras=[
                AssignedCamera(
                    camera_id=c, definition=cameras[c].definition, updated_at=cameras[c].updated_at
                )
                for c in mine
            ],
            live_workers=len(live),
            ttl_s=ttl_s,
        )


@router.put(
    "/workers/{worker_id}/cameras/{camera_id}/state",
    status_code=204,
    summary="Hand over a camera's open sites (refused if another live worker runs it)",
    responses=problems.responses(400, 401, 403, 404, 409, 413),
)
def put_state(
    ctx: Ctx,
    _: Fleet,
    worker_id: WorkerId,
    camera_id: CameraId,
    state: Annotated[UploadFile, File(description="The worker's archive of the camera's sites")],
) -> Response:
    data = state.file.read(MAX_STATE_BYTES + 1)
    if len(data) > MAX_STATE_BYTES:
        raise Problem(413, "The camera state is over 32 MiB", kind="body-too-large")
    now = ctx.clock()
    with ctx.db.write() as session:
        if session.get(FleetCamera, camera_id) is None:
            raise Problem(404, f"No fleet camera {camera_id}", kind="not-found")
        others = [
            w
            for w, r in _live(session, ctx, now).items()
            if w != worker_id and camera_id in r.running
        ]
        if others:  # a worker that lost the camera must not overwrite its new owner's state
            raise Problem(409, f"Camera {camera_id} runs on {others[0]}", kind="conflict")
        row = session.get(FleetCameraState, camera_id)
        if row is None:
            row = FleetCameraState(camera_id=camera_id)
            session.add(row)
        row.data, row.saved_at, row.saved_by = data, now, worker_id
    return Response(status_code=204)


@router.get(
    "/cameras/{camera_id}/state",
    summary="A camera's open sites as its last worker handed them over",
    response_class=Response,
    responses={200: {"content": {"application/x-tar": {}}}, **problems.responses(401, 403, 404)},
)
def get_state(ctx: Ctx, _: Fleet, camera_id: CameraId) -> Response:
    with ctx.db.read() as session:
        row = session.get(FleetCameraState, camera_id)
        if row is None:
            raise Problem(404, f"No saved state for camera {camera_id}", kind="not-found")
        return Response(
            row.data,
            media_type="application/x-tar",
            headers={"X-Saved-At": row.saved_at.isoformat(), "X-Saved-By": row.saved_by},
        )


@router.get(
    "/cameras/{camera_id}/reports",
    summary="The reports this key holds for a camera, as the API has them now",
    response_model=ReportedIncidents,
    responses=problems.responses(400, 401, 403, 422),
)
def camera_reports(
    ctx: Ctx,
    principal: Fleet,
    camera_id: CameraId,
    since: Annotated[
        datetime | None,
        Query(description="Only reports last seen at or after this (default: the last 24 h)"),
    ] = None,
) -> ReportedIncidents:
    """A worker taking a camera over asks which of its incidents are already reported (and
    which cleared): handed-over state may be seconds older than what the previous worker
    delivered before it died. Only this key's namespace and the cameras it may report for."""
    principal.check_camera(camera_id)
    if since is not None and since.tzinfo is None:
        raise Problem(422, "`since` needs a time zone", kind="invalid")
    since = since or ctx.clock() - REPORTS_WINDOW
    with ctx.db.read() as session:
        rows = session.scalars(
            select(Report)
            .where(
                Report.namespace == principal.namespace,
                Report.camera_id == camera_id,
                Report.source == "worker",
                Report.last_seen >= since,
            )
            .order_by(Report.last_seen.desc())
            .limit(MAX_REPORTS)
        )
        return ReportedIncidents(
            items=[
                ReportedIncident(
                    case_id=r.case.id,
                    report=CaseReport.model_validate(
                        {**r.payload, "last_seen": r.last_seen, "cleared_at": r.cleared_at}
                    ),
                )
                for r in rows
            ]
        )
