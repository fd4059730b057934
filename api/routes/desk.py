"""`/v1/desk`: the city's grid and routing table (admin), read by dispatchers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from api import grid, problems, routing
from api.auth import Admin, Dispatch
from api.context import Ctx
from api.desk import import_grid, import_routing
from api.middleware import AuthFirstRoute
from api.problems import Problem

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/desk", tags=["desk"])


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
