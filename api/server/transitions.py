"""Moving a case through its lifecycle, as a reviewer or the dispatch platform asks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server.auth import Principal
from api.server.changes import record
from api.server.intake import refresh
from api.server.lifecycle import TRANSITIONS, allowed
from api.server.notes import system_note
from api.server.problems import Problem
from api.server.schemas import TransitionIn
from api.server.settings import Settings
from api.server.tables import Case


def transition(
    session: Session,
    case: Case,
    body: TransitionIn,
    principal: Principal,
    settings: Settings | None = None,
) -> None:
    """`settings` decides whether a resolved case the camera verified closes at once."""
    # the feedback loop (issue 13), the dispatch desk (issue 27)
    from api.server import desk, suppression_store, verification

    suppression_store.check_transition(body)
    current = CaseStatus(case.status)
    if body.expected_status is not None and body.expected_status != current:
        raise Problem(
            409,
            f"The case is '{current}', not '{body.expected_status}'",
            kind="status-conflict",
            current_status=current,
        )
    if body.to not in TRANSITIONS[current]:
        raise Problem(
            409,
            f"A case cannot go from '{current}' to '{body.to}'",
            kind="invalid-transition",
            current_status=current,
            allowed=allowed(current),
        )
    target = None
    if body.to == CaseStatus.duplicate:
        target = _check_duplicate_of(session, case, body.duplicate_of)
    elif body.duplicate_of is not None:
        raise Problem(422, "duplicate_of is only for 'duplicate'", kind="invalid-transition-body")
    case.status = body.to
    case.duplicate_of = body.duplicate_of
    routed = desk.on_transition(session, case, current, body)
    entry = {"principal": principal, "actor": body.actor, "from_status": current}
    if target is None:
        extra = {"reason": body.reason.value} if body.reason else {}
        record(session, case, "transition", **entry, note=body.note,
               duplicate_of=body.duplicate_of, **extra, **routed)  # fmt: skip
        suppression_store.after_transition(session, case, body, principal)
        if settings is not None:
            verification.close_if_verified(session, case, settings)
        return
    report_ids, evidence = _move(session, case, target)
    record(session, case, "transition", **entry, note=body.note, duplicate_of=target.id,
           moved_report_ids=report_ids, moved_evidence=evidence)  # fmt: skip
    record(
        session,
        target,
        "merged",
        principal=principal,
        actor=body.actor,
        from_status=target.status,
        **system_note("absorbed_case", said=body.note, case=case.id),
        merged_case=case.id,
        report_ids=report_ids,
        evidence=evidence,
    )


def _move(session: Session, source: Case, target: Case) -> tuple[list[str], list[str]]:
    """A duplicate is merged: its reports and evidence now belong to the case it duplicates,
    so they count there, and later observations of its reports reach that case."""
    reports = list(source.reports)
    for r in reports:
        r.case = target
    have = {e.sha256 for e in target.evidence}
    moved = []
    for e in list(source.evidence):
        source.evidence.remove(e)
        if e.sha256 in have:  # the same image on both: the target's link is kept
            session.delete(e)
        else:
            target.evidence.append(e)
            have.add(e.sha256)
            moved.append(e.sha256)
    if source.confidence is not None:
        target.confidence = max(target.confidence or 0.0, source.confidence)
    target.confirmed_at = min(target.confirmed_at, source.confirmed_at)
    session.flush()
    session.expire(target, ["reports"])
    session.expire(source, ["reports"])
    refresh(target)
    return [r.id for r in reports], moved


def _check_duplicate_of(session: Session, case: Case, target_id: str | None) -> Case:
    if target_id is None:
        raise Problem(422, "'duplicate' needs duplicate_of", kind="invalid-transition-body")
    target = session.scalar(select(Case).where(Case.id == target_id))
    if target is None or target.id == case.id or target.status == CaseStatus.duplicate:
        raise Problem(
            422,
            f"duplicate_of must name another case that is not itself a duplicate: {target_id}",
            kind="invalid-transition-body",
        )
    return target
