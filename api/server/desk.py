"""The dispatch desk's service: importing the grid and the routing table, a case's
department and deadline, and the overdue watch (the camera's check is `verification`).

The CLI (`streetwatch desk ...`) and the admin API (`/v1/desk/...`) both import through
here, so both validate the same way: a grid whose cells some rule of the stored routing
table no longer covers is refused, as is a routing table that leaves a cell unrouted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server import grid, routing
from api.server.auth import Principal
from api.server.changes import record
from api.server.clock import now_in
from api.server.db import Database
from api.server.metrics import Metrics
from api.server.notes import system_note
from api.server.problems import Problem
from api.server.routing import Urgency
from api.server.schemas import TransitionIn
from api.server.tables import Case, GridCell


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


# -- dispatching with a deadline ----------------------------------------------------------

# Changes the desk makes on its own: an overdue announcement, the camera's verification.
SYSTEM = Principal(key_id="", name="system", scopes=frozenset())


def on_transition(
    session: Session, case: Case, current: CaseStatus, body: TransitionIn
) -> dict[str, Any]:
    """What a status change means for the desk; returns details for the change's record."""
    if body.to != CaseStatus.dispatched and (body.department or body.urgency):
        raise Problem(
            422, "department and urgency are only for 'dispatched'", kind="invalid-transition-body"
        )
    if body.to == CaseStatus.accepted:
        case.department = routed_department(session, case)
        return {"proposed_department": case.department}
    if body.to == CaseStatus.resolved:
        case.resolved_at = now_in(session)
        return {"department": case.department}
    if body.to != CaseStatus.dispatched:
        return {}
    department = body.department or case.department or routed_department(session, case)
    table = routing.load(session)
    # Without a routing table the desk is not in use: a case is dispatched as before, to
    # nobody in particular and with no deadline.
    if department is None and table is not None:
        raise Problem(
            422,
            f"No department is routed for grid cell '{case.grid}' and type '{case.type}': "
            "name one (department)",
            kind="no-department",
        )
    case.department = department
    if current == CaseStatus.accepted or body.urgency is not None:
        # A first dispatch starts the clock; sent back after a failed check, the deadline
        # stands unless the dispatcher sets a new urgency.
        now = now_in(session)
        case.urgency = (body.urgency or Urgency.normal).value
        case.dispatched_at = case.dispatched_at or now
        case.deadline = table.deadline(case.type, Urgency(case.urgency), now) if table else None
        case.overdue_at = None
    return {
        "department": department,
        "urgency": case.urgency,
        "deadline": case.deadline.isoformat() if case.deadline else None,
    }


def _due(now: datetime) -> Select[tuple[Case]]:
    return select(Case).where(
        Case.status == CaseStatus.dispatched, Case.deadline <= now, Case.overdue_at.is_(None)
    )


def announce_overdue(session: Session, now: datetime) -> list[str]:
    """Mark dispatched cases past their deadline overdue, each once (`case.overdue`)."""
    announced = []
    for case in session.scalars(_due(now).order_by(Case.seq)):
        case.overdue_at = now
        assert case.deadline is not None
        record(
            session,
            case,
            "overdue",
            principal=SYSTEM,
            actor="system",
            from_status=case.status,
            **system_note(
                "overdue", department=str(case.department), deadline=case.deadline.isoformat()
            ),
            department=case.department,
            deadline=case.deadline.isoformat(),
        )
        announced.append(case.id)
    return announced


def overdue_counts(session: Session, now: datetime) -> dict[str, int]:
    """Dispatched cases past their deadline now, per department."""
    rows = session.execute(
        select(Case.department, func.count())
        .where(Case.status == CaseStatus.dispatched, Case.deadline <= now)
        .group_by(Case.department)
    )
    return {str(d): int(n) for d, n in rows}


def check_deadlines(db: Database, metrics: Metrics) -> list[str]:
    """One pass of the overdue watch: announce what newly passed its deadline on the
    server's clock (taking the write lock only when something did) and set the overdue
    gauges."""
    now = db.clock()
    with db.read() as session:
        pending = session.scalar(select(func.count()).select_from(_due(now).subquery()))
    announced: list[str] = []
    if pending:
        with db.write() as session:
            announced = announce_overdue(session, now)
    with db.read() as session:
        counts = overdue_counts(session, now)
    metrics.overdue.clear()
    for department, n in counts.items():
        metrics.overdue.labels(department).set(n)
    return announced
