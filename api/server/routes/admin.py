"""`/v1/keys`, `/v1/webhooks` and `/v1/audit`: administration, with the `admin` scope."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.server import netpolicy, problems
from api.server.auth import Admin, Scope, create_key
from api.server.context import Ctx
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.renditions import original_views
from api.server.schemas import (
    EVENT_TYPES,
    DeliveryOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    OriginalViewOut,
    ReplayIn,
    ReplayOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
)
from api.server.secrets import seal
from api.server.tables import ApiKey, Change, Webhook, WebhookDelivery
from api.server.validation import query_time
from api.server.webhooks import disable, new_secret


def no_store(response: Response) -> None:
    """Keys, secrets and the delivery log are never to be kept by a cache."""
    response.headers["Cache-Control"] = "no-store"


router = APIRouter(
    route_class=AuthFirstRoute,
    prefix="/v1",
    responses=problems.responses(401, 403),
    dependencies=[Depends(no_store)],
)
RecordId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]


def _key_out(k: ApiKey) -> KeyOut:
    return KeyOut(
        id=k.id,
        name=k.name,
        scopes=[Scope(s) for s in k.scopes],
        namespace=k.namespace or k.id,
        cameras=k.cameras,
        department=k.department,
        created_at=k.created_at,
        revoked_at=k.revoked_at,
    )


@router.post(
    "/keys",
    tags=["keys"],
    status_code=201,
    summary="Create an API key",
    responses=problems.responses(422),
)
def post_key(ctx: Ctx, _: Admin, body: KeyCreate) -> KeyCreated:
    """The key is in the answer once; only its hash is stored. `cameras` binds an ingest
    key to those cameras; `namespace_of` lets it continue another key's reports (rotation)."""
    with ctx.db.write() as session:
        record, key = create_key(
            session,
            body.name,
            body.scopes,
            cameras=body.cameras,
            namespace_of=body.namespace_of,
            department=body.department,
        )
        session.flush()
        return KeyCreated(**_key_out(record).model_dump(), key=key)


@router.get("/keys", tags=["keys"], summary="List API keys")
def list_keys(ctx: Ctx, _: Admin) -> list[KeyOut]:
    with ctx.db.read() as session:
        return [_key_out(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at))]


@router.delete(
    "/keys/{key_id}",
    tags=["keys"],
    summary="Revoke an API key",
    responses=problems.responses(404, 422),
)
def revoke_key(ctx: Ctx, _: Admin, key_id: RecordId) -> KeyOut:
    with ctx.db.write() as session:
        record = session.get(ApiKey, key_id)
        if record is None:
            raise Problem(404, f"No key {key_id}", kind="not-found")
        record.revoked_at = record.revoked_at or ctx.clock()
        return _key_out(record)


def _hook_out(h: Webhook) -> WebhookOut:
    return WebhookOut(
        id=h.id,
        url=h.url,
        event_types=h.event_types,
        evidence=h.evidence,  # type: ignore[arg-type]  # the column holds only these two
        active=h.active,
        created_at=h.created_at,
        disabled_at=h.disabled_at,
        disabled_reason=h.disabled_reason,
        failing_since=h.failing_since,
    )


def _hook(session: Session, webhook_id: str) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise Problem(404, f"No webhook {webhook_id}", kind="not-found")
    return hook


def _active(hook: Webhook) -> None:
    if not hook.active:
        raise Problem(
            409,
            f"Webhook {hook.id} is disabled ({hook.disabled_reason}); enable it first",
            kind="webhook-disabled",
        )


@router.post(
    "/webhooks",
    tags=["webhooks"],
    status_code=201,
    summary="Subscribe a webhook",
    responses=problems.responses(422),
)
def post_webhook(ctx: Ctx, _: Admin, body: WebhookCreate) -> WebhookCreated:
    """Every later change of the subscribed types is POSTed to `url`, signed per the Standard
    Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<HMAC-SHA256>`)
    with the returned secret, and retried until it gets a 2xx: on a schedule spanning more
    than three days, with jitter, and no sooner than a 429's or 503's `Retry-After`. A
    `410 Gone`, or failing without a success for days (`webhook_disable_after_s`), disables
    the endpoint, with a `webhook.disabled` event in the change feed."""
    if body.event_types is not None and (
        unknown := set(body.event_types) - set(EVENT_TYPES.values())
    ):
        raise Problem(422, f"Unknown event types: {sorted(unknown)}", kind="invalid-body")
    url = str(body.url)
    try:
        netpolicy.check(url, ctx.settings.webhook_allow_networks)
    except netpolicy.TargetRefused as exc:
        raise Problem(
            422, f"Webhook target refused: {exc}", kind="webhook-target-refused"
        ) from None
    secret = new_secret()
    with ctx.db.write() as session:
        hook = Webhook(
            id=f"wh_{secrets.token_hex(8)}",
            url=url,
            secret="",
            event_types=body.event_types,
            evidence=body.evidence,
            active=True,
            created_at=ctx.clock(),
        )
        hook.secret = seal(ctx.server_key, secret, hook.id)
        session.add(hook)
        return WebhookCreated(**_hook_out(hook).model_dump(), secret=secret)


@router.get("/webhooks", tags=["webhooks"], summary="List webhooks")
def list_webhooks(ctx: Ctx, _: Admin) -> list[WebhookOut]:
    with ctx.db.read() as session:
        return [_hook_out(h) for h in session.scalars(select(Webhook).order_by(Webhook.created_at))]


@router.delete(
    "/webhooks/{webhook_id}",
    tags=["webhooks"],
    summary="Deactivate a webhook",
    responses=problems.responses(404, 422),
)
def delete_webhook(ctx: Ctx, _: Admin, webhook_id: RecordId) -> WebhookOut:
    """It stops receiving changes at once: no further attempts, not even of deliveries
    already queued (they are failed, and can be replayed). Its delivery log is kept."""
    with ctx.db.write() as session:
        hook = _hook(session, webhook_id)
        disable(session, hook, "deleted by an administrator")
        return _hook_out(hook)


@router.post(
    "/webhooks/{webhook_id}/enable",
    tags=["webhooks"],
    summary="Enable a disabled webhook again",
    responses=problems.responses(404, 422),
)
def enable_webhook(ctx: Ctx, _: Admin, webhook_id: RecordId) -> WebhookOut:
    """It receives new changes again; what it missed can be replayed."""
    with ctx.db.write() as session:
        hook = _hook(session, webhook_id)
        hook.active = True
        hook.disabled_at = hook.disabled_reason = hook.failing_since = None
        return _hook_out(hook)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    tags=["webhooks"],
    status_code=202,
    summary="Send one delivery again",
    responses=problems.responses(404, 409, 422),
)
def replay_delivery(
    ctx: Ctx, _: Admin, webhook_id: RecordId, delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> DeliveryOut:
    """Queued to be sent now, whatever its state, with the same `webhook-id` (so a receiver
    that has it already can tell); its retry schedule starts over."""
    with ctx.db.write() as session:
        hook = _hook(session, webhook_id)
        _active(hook)
        d = session.get(WebhookDelivery, delivery_id)
        if d is None or d.webhook_id != hook.id:
            raise Problem(404, f"No delivery {delivery_id} of {webhook_id}", kind="not-found")
        _requeue(d, ctx.clock())
        session.flush()
        return DeliveryOut.model_validate(d, from_attributes=True)


@router.post(
    "/webhooks/{webhook_id}/replay",
    tags=["webhooks"],
    status_code=202,
    summary="Send the changes of a time range again",
    responses=problems.responses(400, 404, 409, 422),
)
def replay_range(ctx: Ctx, _: Admin, webhook_id: RecordId, body: ReplayIn) -> ReplayOut:
    """Every change of the endpoint's event types made in the range whose delivery failed,
    or that was never queued for it (it was disabled, or not yet subscribed), is queued again;
    with `include_delivered`, delivered ones too. At most 10,000 per request: repeat with a
    later `since` for more."""
    since = query_time(body.since, "since")
    until = query_time(body.until, "until") if body.until is not None else ctx.clock()
    if until < since:
        raise Problem(422, "until is before since", kind="invalid-body")
    with ctx.db.write() as session:
        hook = _hook(session, webhook_id)
        _active(hook)
        changes = session.scalars(
            select(Change)
            .where(Change.at >= since, Change.at < until)
            .order_by(Change.seq)
            .limit(10_000)
        ).all()
        existing = {
            d.change_seq: d
            for d in session.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.webhook_id == hook.id,
                    WebhookDelivery.change_seq.in_([c.seq for c in changes]),
                )
            )
        }
        queued = 0
        for change in changes:
            if hook.event_types is not None and EVENT_TYPES[change.kind] not in hook.event_types:
                continue
            if change.kind == "webhook_disabled" and change.data.get("webhook_id") == hook.id:
                continue  # its own disabling
            d = existing.get(change.seq)
            if d is None:
                session.add(
                    WebhookDelivery(
                        webhook_id=hook.id,
                        change_seq=change.seq,
                        status="pending",
                        attempts=0,
                        next_attempt_at=ctx.clock(),
                    )
                )
            elif d.status == "failed" or (d.status == "delivered" and body.include_delivered):
                _requeue(d, ctx.clock())
            else:
                continue
            queued += 1
        return ReplayOut(queued=queued)


def _requeue(d: WebhookDelivery, now: datetime) -> None:
    d.status, d.attempts, d.next_attempt_at = "pending", 0, now
    d.delivered_at = None


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    tags=["webhooks"],
    summary="The webhook's delivery log",
    responses=problems.responses(404, 422),
)
def deliveries(
    ctx: Ctx,
    _: Admin,
    webhook_id: RecordId,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """Newest first: attempts, last response status or error, next retry."""
    with ctx.db.read() as session:
        if session.get(Webhook, webhook_id) is None:
            raise Problem(404, f"No webhook {webhook_id}", kind="not-found")
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        return [DeliveryOut.model_validate(d, from_attributes=True) for d in session.scalars(query)]


@router.get(
    "/audit/original-views",
    tags=["audit"],
    summary="Who was shown original evidence",
    responses=problems.responses(400, 422),
)
def get_original_views(
    ctx: Ctx,
    _: Admin,
    case_id: Annotated[str | None, Query(max_length=40, description="Of this case")] = None,
    since: Annotated[datetime | None, Query(description="At or after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OriginalViewOut]:
    """Newest first: every time the console showed a person an original evidence image (or
    an annotated copy of one) rather than its de-identified rendition: who, which image,
    which case, when."""
    with ctx.db.read() as session:
        rows = original_views(session, case_id, query_time(since, "since"), limit)
        return [OriginalViewOut.model_validate(r, from_attributes=True) for r in rows]
