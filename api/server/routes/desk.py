"""`/v1/desk`: the city's grid and routing table (admin), read by dispatchers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server import grid, problems, routing
from api.server.auth import Admin, DepartmentKey, Dispatch, Principal
from api.server.context import Context, Ctx
from api.server.desk import import_grid, import_routing
from api.server.desk_stats import NONE, STEPS, GroupBy, statistics, to_csv
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.schemas import CaseOut, CasePage, Name, Note, TransitionIn
from api.server.serialize import case_out
from api.server.tables import Case
from api.server.transitions import transition
from api.server.validation import query_time

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/desk", tags=["desk"])
CaseId = Annotated[str, Path(min_length=1, max_length=128, description="A case id")]


class GridImported(BaseModel):
    cells: int
    codes: list[str] = Field(description="The cells' codes, sorted")


@router.put(
    "/grid",
    summary="Replace the grid (单元网格)",
    response_model=GridImported,
    responses=problems.responses(401, 403, 422),
)
def put_grid(
    ctx: Ctx,
    principal: Admin,
    document: Annotated[
        dict[str, Any],
        Body(
            description="A GeoJSON FeatureCollection of Polygon/MultiPolygon cells with "
            "properties `code` (unique), optional `parent` and `name`"
        ),
    ],
) -> GridImported:
    """Refused whole (422) when a feature is not a closed WGS 84 polygon with a code, when
    two cells overlap, or when the stored routing table leaves a new cell unrouted."""
    with ctx.db.write() as session:
        cells = import_grid(session, document, principal.actor)
    return GridImported(cells=len(cells), codes=sorted(c.code for c in cells))


@router.get("/grid", summary="The grid as GeoJSON", responses=problems.responses(401, 403))
def get_grid(ctx: Ctx, _: Dispatch) -> dict[str, Any]:
    with ctx.db.read() as session:
        cells = grid.load(session)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": c.code, "parent": c.parent, "name": c.name},
                "geometry": c.geometry(),
            }
            for c in cells
        ],
    }


@router.put(
    "/routing",
    summary="Replace the routing table",
    response_model=routing.RoutingTable,
    responses=problems.responses(401, 403, 409, 422),
)
def put_routing(
    ctx: Ctx, principal: Admin, document: Annotated[dict[str, Any], Body()]
) -> routing.RoutingTable:
    """Routes ((cell or parent area, type) -> department), deadlines per type and urgency
    (plain or working hours) and the working calendar. Refused (422) when a rule names an
    area the grid lacks, a cell is routed nowhere for some type, or a type has no deadline;
    409 before a grid is imported."""
    with ctx.db.write() as session:
        return import_routing(session, document, principal.actor)


@router.get(
    "/routing",
    summary="The routing table",
    response_model=routing.RoutingTable,
    responses=problems.responses(401, 403, 404),
)
def get_routing(ctx: Ctx, _: Dispatch) -> routing.RoutingTable:
    with ctx.db.read() as session:
        table = routing.load(session)
    if table is None:
        raise Problem(404, "No routing table is imported", kind="not-found")
    return table


# -- a department's own cases (a `department` key) ------------------------------------------


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Name = Field(description="The person reporting it handled")
    note: Note | None = None


def _department_case(session: Session, case_id: str, principal: Principal) -> Case:
    """A case dispatched to the key's department; any other is 404, as if it did not exist."""
    case = session.scalar(select(Case).where(Case.id == case_id))
    if case is None or case.dispatched_at is None or case.department != principal.department:
        raise Problem(404, f"No case '{case_id}' dispatched to this department", kind="not-found")
    return case


@router.get(
    "/department/cases",
    summary="The cases dispatched to the key's department",
    response_model=CasePage,
    responses=problems.responses(401, 403, 422),
)
def department_cases(
    ctx: Ctx,
    principal: DepartmentKey,
    status: Annotated[list[CaseStatus] | None, Query(description="Any of these")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> CasePage:
    """Newest first; those it still has to handle are `dispatched` (`overdue` past the
    deadline)."""
    query = (
        select(Case)
        .where(Case.department == principal.department, Case.dispatched_at.is_not(None))
        .order_by(Case.seq.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Case.status.in_([s.value for s in status]))
    now = ctx.clock()
    with ctx.db.read() as session:
        return CasePage(items=[case_out(c, now) for c in session.scalars(query)], next_cursor=None)


@router.get(
    "/department/cases/{case_id}",
    summary="One case dispatched to the key's department",
    response_model=CaseOut,
    responses=problems.responses(401, 403, 404, 422),
)
def department_case(ctx: Ctx, principal: DepartmentKey, case_id: CaseId) -> CaseOut:
    with ctx.db.read() as session:
        return case_out(_department_case(session, case_id, principal), ctx.clock())


@router.post(
    "/department/cases/{case_id}/resolve",
    summary="Report a case handled (处置反馈)",
    response_model=CaseOut,
    responses=problems.responses(401, 403, 404, 409, 422),
)
def department_resolve(
    ctx: Ctx, principal: DepartmentKey, case_id: CaseId, body: ResolveIn
) -> CaseOut:
    """`dispatched` -> `resolved`; the camera then checks it (核查): if it still sees the
    object after `verify_clear_s`, the case comes back `not_verified`."""
    with ctx.db.write() as session:
        case = _department_case(session, case_id, principal)
        move = TransitionIn(
            to=CaseStatus.resolved,
            actor=body.actor,
            note=body.note,
            expected_status=CaseStatus.dispatched,
        )
        transition(session, case, move, principal, ctx.settings)
        out = case_out(case, ctx.clock())
    ctx.metrics.transitions.labels(CaseStatus.resolved.value).inc()
    return out


# -- 监督评价: statistics -------------------------------------------------------------------


class StepTime(BaseModel):
    n: int
    median_s: float | None
    p90_s: float | None


class StatsRow(BaseModel):
    key: str = Field(description=f"The department, grid cell, type or camera; `{NONE}`: none")
    reported: int
    accepted: int
    dispatched: int
    resolved: int
    resolved_on_time: int
    closed: int
    overdue_now: int
    acceptance_rate: float | None = Field(description="立案率: accepted / reported")
    on_time_rate: float | None = Field(description="按期处置率: resolved on time / dispatched")
    closure_rate: float | None = Field(description="结案率: closed / accepted")
    times: dict[str, StepTime] = Field(description=f"Per step ({', '.join(STEPS)})")


class Stats(BaseModel):
    by: GroupBy
    at: datetime = Field(description="The moment `overdue_now` was taken at")
    rows: list[StatsRow]


StatsBy = Annotated[GroupBy, Query(description="Group by this")]
Since = Annotated[datetime | None, Query(description="Cases opened at or after")]
Until = Annotated[datetime | None, Query(description="Cases opened before")]


def _stats(ctx: Context, by: GroupBy, since: datetime | None, until: datetime | None) -> Stats:
    now = ctx.clock()
    start, end = query_time(since, "since"), query_time(until, "until")
    with ctx.db.read() as session:
        rows = statistics(session, by, now, start, end)
    return Stats(by=by, at=now, rows=[StatsRow.model_validate(r) for r in rows])


@router.get(
    "/stats",
    summary="Statistics per department, grid cell, type or camera (监督评价)",
    response_model=Stats,
    responses=problems.responses(400, 401, 403, 422),
)
def get_stats(
    ctx: Ctx,
    _: Dispatch,
    by: StatsBy = GroupBy.department,
    since: Since = None,
    until: Until = None,
) -> Stats:
    """Counts, rates and step times read off the cases and their histories; the figures
    are defined in `api/server/desk_stats.py`."""
    return _stats(ctx, by, since, until)


@router.get(
    "/stats.csv",
    summary="The same statistics as CSV",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "One row per group"},
        **problems.responses(400, 401, 403, 422),
    },
)
def get_stats_csv(
    ctx: Ctx,
    _: Dispatch,
    by: StatsBy = GroupBy.department,
    since: Since = None,
    until: Until = None,
) -> Response:
    stats = _stats(ctx, by, since, until)
    body = to_csv(by, [r.model_dump() for r in stats.rows])
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="streetwatch-stats-{by}.csv"'},
    )
