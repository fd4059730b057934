"""The dispatch desk's service: importing the grid and the routing table, and what a case's
department and deadline are.

The CLI (`streetwatch desk ...`) and the admin API (`/v1/desk/...`) both import through
here, so both validate the same way: a grid whose cells some rule of the stored routing
table no longer covers is refused, as is a routing table that leaves a cell unrouted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import grid, routing
from api.problems import Problem
from api.tables import Case, GridCell


def import_grid(session: Session, document: Any, by: str) -> list[grid.Cell]:
    cells = grid.parse(document)
    table = routing.load(session)
    if table is not None:
        routing.check(table, cells)
    grid.store(session, cells, by)
    return cells


def import_routing(session: Session, document: Any, by: str) -> routing.RoutingTable:
    table = routing.parse(document)
    cells = grid.load(session)
    if not cells:
        raise Problem(409, "Import the grid before its routing table", kind="no-grid")
    routing.check(table, cells)
    routing.store(session, table, by)
    return table


def routed_department(session: Session, case: Case) -> str | None:
    """The department the routing table names for the case's grid cell and type."""
    if case.grid is None:
        return None
    table = routing.load(session)
    if table is None:
        return None
    parent = session.scalar(select(GridCell.parent).where(GridCell.code == case.grid))
    return table.department(case.grid, parent, case.type)
