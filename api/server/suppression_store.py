"""Suppressions on the server: made by rejections as `permitted` or `fixture`, listed,
edited and removed by reviewers (console and API), fetched by workers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Principal
from api.contract import CaseStatus
from api.problems import Problem
from api.schemas import TransitionIn
from api.suppress import SUPPRESSING, RejectReason, Schedule, SuppressionRule
from api.tables import Case, Suppression, utcnow


def new_id() -> str:
    return "sup-" + secrets.token_hex(8)


def rule_of(row: Suppression) -> SuppressionRule:
    return SuppressionRule(
        id=row.id,
        camera_id=row.camera_id,
        zone_id=row.zone_id,
        type=row.type,
        bbox=row.bbox,
        min_iou=row.min_iou,
        reason=row.reason,
        expires_at=row.expires_at,
        schedule=Schedule.model_validate(row.schedule) if row.schedule else None,
        active=row.active,
    )


def check_transition(body: TransitionIn) -> None:
    """A reason is for rejections only; suppression options only for suppressing reasons."""
    if body.reason is not None and body.to != CaseStatus.rejected:
        raise Problem(422, "reason is only for 'rejected'", kind="invalid-transition-body")
    if body.suppress is not None and body.reason not in SUPPRESSING:
        raise Problem(
            422,
            "suppress is only for a rejection as 'permitted' or 'fixture'",
            kind="invalid-transition-body",
        )


def after_transition(
    session: Session, case: Case, body: TransitionIn, principal: Principal
) -> Suppression | None:
    """A rejection as `permitted` or `fixture` suppresses the case's site from now on."""
    if body.to != CaseStatus.rejected or body.reason not in SUPPRESSING:
        return None
    if case.camera_id is None or not case.bbox or case.zone_id is None:
        return None  # an Open311 case: no camera site to suppress
    options = body.suppress
    now = utcnow()
    row = Suppression(
        id=new_id(),
        camera_id=case.camera_id,
        zone_id=case.zone_id,
        type=case.type,
        bbox=list(case.bbox),
        min_iou=options.min_iou if options else 0.3,
        reason=RejectReason(body.reason).value,
        case_id=case.id,
        note=body.note,
        expires_at=options.expires_at if options else None,
        schedule=options.schedule.model_dump() if options and options.schedule else None,
        active=True,
        created_by=body.actor,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row


def list_rows(
    session: Session, cameras: Sequence[str] | None = None, include_inactive: bool = True
) -> list[Suppression]:
    query = select(Suppression).order_by(Suppression.created_at.desc())
    if not include_inactive:
        query = query.where(Suppression.active.is_(True))
    rows = list(session.scalars(query))
    if cameras is not None:
        import fnmatch

        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.camera_id, p) for p in cameras)]
    return rows


def get_row(session: Session, suppression_id: str) -> Suppression:
    row = session.get(Suppression, suppression_id)
    if row is None:
        raise Problem(404, f"No suppression {suppression_id}", kind="not-found")
    return row
