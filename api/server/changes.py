"""Recording a change: one row in the feed/history, and its webhook deliveries, in the same
transaction as the change itself, so neither can be lost or sent for a change not made."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.server.auth import Principal
from api.server.clock import now_in
from api.server.schemas import EVENT_TYPES
from api.server.serialize import case_out
from api.server.tables import Case, Change, Webhook, WebhookDelivery


def record(
    session: Session,
    case: Case,
    kind: str,
    *,
    principal: Principal,
    actor: str | None = None,
    from_status: str | None = None,
    note: str | None = None,
    **details: Any,
) -> Change:
    now = now_in(session)
    case.updated_at = now
    session.flush()  # give a new case its seq before the change points at it
    change = Change(
        case_seq=case.seq,
        case_id=case.id,
        kind=kind,
        at=now,
        actor=actor or principal.actor,
        api_key_id=principal.key_id or None,  # the system has no key
        from_status=from_status,
        to_status=case.status,
        note=note,
        data={**details, "case": case_out(case, now).model_dump(mode="json")},
    )
    session.add(change)
    session.flush()
    _queue(session, change)
    return change


def _queue(session: Session, change: Change) -> None:
    """A delivery of the change to every active endpoint subscribed to its type."""
    event_type = EVENT_TYPES[change.kind]
    for hook in session.scalars(select(Webhook).where(Webhook.active.is_(True))):
        if hook.event_types is None or event_type in hook.event_types:
            session.add(
                WebhookDelivery(
                    webhook_id=hook.id,
                    change_seq=change.seq,
                    status="pending",
                    attempts=0,
                    next_attempt_at=change.at,
                )
            )


def record_endpoint_event(session: Session, hook: Webhook, kind: str, **details: Any) -> Change:
    """An event about a webhook endpoint, not a case (`webhook_disabled`): in the change
    feed like any change, and sent to the endpoints still active."""
    change = Change(
        case_seq=None,
        case_id=None,
        kind=kind,
        at=now_in(session),
        actor="system",
        api_key_id=None,
        from_status=None,
        to_status=None,
        note=details.get("reason"),
        data={"webhook_id": hook.id, **details},
    )
    session.add(change)
    session.flush()
    _queue(session, change)
    return change
