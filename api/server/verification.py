"""核查 by the camera: what a worker's report or observation says about work a department
was sent to do. Cleared evidence verifies a dispatched or resolved case (and closes a
resolved one where the city lets the camera close cases); an object still seen after the
department resolved the case sends it back to them, not verified, with the evidence."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server.changes import record
from api.server.desk import SYSTEM
from api.server.notes import system_note
from api.server.settings import Settings
from api.server.tables import Case

CAMERA_ACTOR = "camera"


def after_sighting(session: Session, case: Case, settings: Settings) -> None:
    """A report or observation reached `case`: what its camera now says about the work.

    Cleared (every report of it saw the object gone) while dispatched or resolved: verified,
    and closed if the city lets the camera close cases. Still seen more than
    `verify_clear_s` after the department resolved it: back to the department, not verified,
    with the latest evidence."""
    status = CaseStatus(case.status)
    if status not in (CaseStatus.dispatched, CaseStatus.resolved):
        return
    if case.cleared_at is not None:
        if case.verification == "verified":
            return
        case.verification, case.verified_at = "verified", case.cleared_at
        cleared = [e.sha256 for e in case.evidence if e.kind == "cleared"]
        record(
            session,
            case,
            "verified",
            principal=SYSTEM,
            actor=CAMERA_ACTOR,
            from_status=status,
            **system_note("verified", cleared_at=case.cleared_at.isoformat()),
            department=case.department,
            evidence=cleared,
        )
        close_if_verified(session, case, settings)
        return
    resolved = case.resolved_at
    if (
        status == CaseStatus.resolved
        and resolved is not None
        and case.last_seen > resolved + timedelta(seconds=settings.verify_clear_s)
    ):
        case.status = CaseStatus.dispatched
        case.verification, case.verified_at = "not_verified", None
        latest = sorted(case.evidence, key=lambda e: e.captured_at)[-3:]
        record(
            session,
            case,
            "transition",
            principal=SYSTEM,
            actor=CAMERA_ACTOR,
            from_status=status,
            **system_note(
                "not_verified",
                last_seen=case.last_seen.isoformat(),
                resolved_at=resolved.isoformat(),
            ),
            department=case.department,
            verification="not_verified",
            evidence=[e.sha256 for e in latest],
        )


def close_if_verified(session: Session, case: Case, settings: Settings) -> None:
    if not (
        settings.verified_auto_close
        and case.status == CaseStatus.resolved
        and case.verification == "verified"
    ):
        return
    case.status = CaseStatus.closed
    record(
        session,
        case,
        "transition",
        principal=SYSTEM,
        actor=CAMERA_ACTOR,
        from_status=CaseStatus.resolved,
        **system_note("closed_verified"),
        department=case.department,
        verification="verified",
    )
