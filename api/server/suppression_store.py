"""Suppressions as the server stores them: made by rejections as `permitted` or `fixture`,
listed, created, edited and removed by reviewers (the API's `/v1/suppressions` routes and the
console, through the functions here), fetched by workers. The rules themselves (what a
suppression matches, its schedule) are the contract's `api.contract.suppression_rules`."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.contract import CaseStatus, Id, IncidentType, Pixel
from api.contract.suppression_rules import SUPPRESSING, RejectReason, Schedule, SuppressionRule
from api.server.auth import Principal
from api.server.clock import now_in
from api.server.context import Context
from api.server.problems import Problem
from api.server.schemas import Name, Note, TransitionIn
from api.server.tables import Case, Suppression


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
    now = now_in(session)
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
    return SuppressionOut(
        **rule_of(row).model_dump(),
        case_id=row.case_id,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create(ctx: Context, body: SuppressionCreate) -> SuppressionOut:
    rule = SuppressionRule(id="new", **body.model_dump(exclude={"note", "actor"}))
    now = ctx.clock()
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


def update(ctx: Context, suppression_id: str, body: SuppressionPatch) -> SuppressionOut:
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
        row.updated_at = ctx.clock()
        return suppression_out(row)
