"""Webhook delivery as the Standard Webhooks spec recommends.

Deliveries are queued in the database with the change that caused them (`api.server.changes`).
Every API process runs a dispatcher; they share the work through the database:

- a dispatcher *claims* one due delivery at a time (`claim_token`, `claimed_until`, taken
  with `FOR UPDATE SKIP LOCKED` on PostgreSQL), and the claim outlives the longest a send
  may take (`webhook_timeout_s` is the whole attempt's deadline, enforced by cancelling
  it), so two processes never send one delivery at once, and a process that died holding
  a claim only delays that delivery until the claim expires;
- each endpoint is served by its own task, in delivery order; endpoints are served
  concurrently (up to `webhook_concurrency`), so a slow receiver delays only itself;
- a failed attempt is retried on a schedule spanning more than three days
  (`webhook_backoff_s`), each delay with random jitter; `429` and `503` with `Retry-After`
  are retried no sooner than the receiver asked; `410 Gone` disables the endpoint at once,
  and so does failing without a success for `webhook_disable_after_s`; disabling records a
  `webhook.disabled` event in the change feed (and sends it to the other endpoints);
- a disabled or deleted endpoint gets no further attempts; its pending deliveries are
  failed, and can be replayed (`POST /v1/webhooks/{id}/replay`) once it is enabled again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from functools import partial

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from api.server import netpolicy
from api.server.clock import now_in
from api.server.db import Database
from api.server.metrics import Metrics
from api.server.renditions import DEIDENTIFIED, deidentified_data, media_url
from api.server.schemas import EVENT_TYPES
from api.server.secrets import SecretError, open_sealed, seal
from api.server.serialize import change_out
from api.server.settings import Settings
from api.server.tables import Change, Webhook, WebhookDelivery

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """What a receiver does: check the signature and that the timestamp is recent."""
    msg_id, ts = headers["webhook-id"], int(headers["webhook-timestamp"])
    if abs(time.time() - ts) > tolerance_s:
        return False
    expected = sign(secret, msg_id, ts, body).encode()
    return any(
        hmac.compare_digest(expected, s.encode()) for s in headers["webhook-signature"].split()
    )


def seal_plaintext_secrets(db: Database, server_key: bytes) -> int:
    """Encrypt webhook secrets stored in clear (before 0002); returns how many."""
    with db.write() as session:
        hooks = [h for h in session.scalars(select(Webhook)) if h.secret.startswith(SECRET_PREFIX)]
        for hook in hooks:
            hook.secret = seal(server_key, hook.secret, hook.id)
    return len(hooks)


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    webhook_id: str
    token: str
    url: str
    secret: str | None  # None: it did not open with this server secret
    msg_id: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    retry_after_s: float | None = None


# What a delivery attempt may say about the receiver: its status code, or one of these.
# Never anything the receiver sent, nor what an address that was refused would have said.
REFUSED = "refused: the target is not an allowed address"
PERMANENT = frozenset({REFUSED, "secret unavailable"})
TIMED_OUT = "timed out"
DISABLED_ERROR = "endpoint disabled"


def jittered(delay_s: float, jitter: float) -> float:
    """`delay_s` spread by +-`jitter` (a fraction), so retries of many deliveries scatter."""
    return max(0.0, delay_s * random.uniform(1 - jitter, 1 + jitter))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def disable(session: Session, hook: Webhook, reason: str) -> None:
    """Stop sending to an endpoint: no further attempts, its pending deliveries failed, and
    a `webhook.disabled` event in the change feed (for the other endpoints too)."""
    from api.server.changes import record_endpoint_event  # changes imports this module's callers

    if not hook.active:
        return
    now = now_in(session)
    hook.active = False
    hook.disabled_at, hook.disabled_reason = now, reason
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == hook.id, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, last_error=DISABLED_ERROR)
    )
    record_endpoint_event(session, hook, "webhook_disabled", reason=reason)


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, metrics: Metrics, server_key: bytes
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.server_key = server_key
        # The deadline of one attempt is enforced around the request; these bound its parts.
        t = settings.webhook_timeout_s
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(t), follow_redirects=False, trust_env=False
        )
        self.busy: set[str] = set()  # endpoints this process is sending to now

    @property
    def lease(self) -> timedelta:
        """How long a claim holds: well past the deadline of the attempt it covers."""
        return timedelta(seconds=self.settings.webhook_timeout_s * 2 + 30)

    def _due(self) -> list[str]:
        """Endpoints with a delivery due now that no process holds a claim on."""
        now = self.db.clock()
        with self.db.read() as session:  # polling must not take the write lock for nothing
            rows = session.execute(
                select(WebhookDelivery.webhook_id)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    Webhook.active.is_(True),
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(
                        WebhookDelivery.claimed_until.is_(None),
                        WebhookDelivery.claimed_until <= now,
                    ),
                )
                .distinct()
                .limit(1000)
            )
            return [r[0] for r in rows]

    def claim(self, webhook_id: str) -> _Job | None:
        """Claim the endpoint's oldest due delivery, or None when it has none (or another
        process holds one: an endpoint's deliveries go one at a time, in order)."""
        now = self.db.clock()
        with self.db.write() as session:
            hook = session.get(Webhook, webhook_id)
            if hook is None or not hook.active:
                return None
            held = session.scalar(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.webhook_id == webhook_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.claimed_until > now,
                )
                .limit(1)
            )
            if held is not None:
                return None
            query = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.webhook_id == webhook_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                )
                .order_by(WebhookDelivery.id)
                .limit(1)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            d = session.scalar(query)
            if d is None:
                return None
            token = secrets.token_hex(16)
            d.claim_token, d.claimed_until = token, now + self.lease
            change = session.get_one(Change, d.change_seq)
            out = change_out(change)
            data = out.model_dump(mode="json")
            if hook.evidence == DEIDENTIFIED:  # the endpoint's choice: renditions only
                link = partial(media_url, self.settings, self.server_key)
                data["data"] = deidentified_data(data["data"], link)
            payload = {
                "type": EVENT_TYPES[change.kind],
                "timestamp": out.at.isoformat(),
                "data": data,
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
            try:
                secret: str | None = open_sealed(self.server_key, hook.secret, hook.id)
            except SecretError:
                secret = None
            return _Job(d.id, hook.id, token, hook.url, secret, f"msg_{change.seq}", body)

    async def send(self, job: _Job) -> Outcome:
        """One attempt, within the whole-attempt deadline."""
        try:
            return await asyncio.wait_for(self._send(job), self.settings.webhook_timeout_s)
        except TimeoutError:
            return Outcome(None, TIMED_OUT)

    async def _send(self, job: _Job) -> Outcome:
        if job.secret is None:
            return Outcome(None, "secret unavailable")
        allow = self.settings.webhook_allow_networks
        try:
            target, addresses = await asyncio.to_thread(netpolicy.check, job.url, allow)
        except netpolicy.TargetRefused as exc:
            log.warning("webhook delivery %d refused: %s", job.delivery_id, exc)
            return Outcome(None, REFUSED)
        # Connect to the address just checked; the name goes in Host and TLS SNI.
        ip = addresses[0]
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        url = f"{target.scheme}://{host}:{target.port}{target.path}"
        default_port = 443 if target.scheme == "https" else 80
        name = f"[{target.host}]" if ":" in target.host else target.host
        ts = int(time.time())
        headers = {
            "host": name if target.port == default_port else f"{name}:{target.port}",
            "content-type": "application/json",
            "webhook-id": job.msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(job.secret, job.msg_id, ts, job.body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            # Streamed and closed unread: the receiver's body is never fetched or kept.
            async with self.client.stream(
                "POST", url, content=job.body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
                wait = retry_after(response.headers.get("retry-after"))
        except httpx.HTTPError as exc:
            return Outcome(None, type(exc).__name__)
        if 200 <= status < 300:
            return Outcome(status, None)
        return Outcome(status, f"HTTP {status}", wait if status in (429, 503) else None)

    def record(self, job: _Job, outcome: Outcome) -> str:
        """Log the attempt on the delivery and decide what follows; returns the outcome."""
        s = self.settings
        now = self.db.clock()
        with self.db.write() as session:
            d = session.get_one(WebhookDelivery, job.delivery_id)
            if d.claim_token != job.token:
                return "stale"  # the claim was lost (it cannot outlive the lease)
            if d.status != "pending" and outcome.error is not None:
                return "stale"  # the endpoint was disabled meanwhile: that stands
            hook = session.get_one(Webhook, d.webhook_id)
            d.attempts += 1
            d.last_attempt_at = now
            d.last_status_code = outcome.status_code
            d.last_error = outcome.error
            d.claim_token, d.claimed_until = None, None
            backoff = s.webhook_backoff_s
            if outcome.error is None:
                d.status, d.delivered_at, d.next_attempt_at = "delivered", now, None
                hook.failing_since = None
                result = "delivered"
            elif outcome.status_code == 410:
                d.status, d.next_attempt_at = "failed", None
                disable(session, hook, "the receiver answered 410 Gone")
                result = "disabled"
            else:
                hook.failing_since = hook.failing_since or now
                failing_s = (now - hook.failing_since).total_seconds()
                if outcome.error in PERMANENT or d.attempts > len(backoff):
                    d.status, d.next_attempt_at = "failed", None
                    result = "failed"
                else:
                    delay = jittered(backoff[d.attempts - 1], s.webhook_jitter)
                    if outcome.retry_after_s is not None:  # the receiver's wish, within reason
                        delay = max(delay, min(outcome.retry_after_s, s.webhook_max_retry_after_s))
                    d.next_attempt_at = now + timedelta(seconds=delay)
                    result = "retry"
                if failing_s >= s.webhook_disable_after_s:
                    if d.status == "pending":
                        d.status, d.next_attempt_at = "failed", None
                    days = failing_s / 86400
                    disable(session, hook, f"failing without a success for {days:.1f} days")
                    result = "disabled"
        self.metrics.webhook_attempts.labels(result).inc()
        return result

    async def _serve_endpoint(self, webhook_id: str) -> None:
        """Send the endpoint's due deliveries one after another, then give it up."""
        try:
            while True:
                job = await asyncio.to_thread(self.claim, webhook_id)
                if job is None:
                    return
                outcome = await self.send(job)
                await asyncio.to_thread(self.record, job, outcome)
        except Exception:
            log.exception("webhook dispatch to %s failed; retrying", webhook_id)
        finally:
            self.busy.discard(webhook_id)

    async def run(self, stop: asyncio.Event) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                try:
                    due = await asyncio.to_thread(self._due)
                except Exception:
                    log.exception("webhook dispatch failed; retrying")
                    due = []
                limit = self.settings.webhook_concurrency
                for webhook_id in due:
                    if webhook_id in self.busy or len(self.busy) >= limit:
                        continue
                    self.busy.add(webhook_id)
                    task = asyncio.create_task(self._serve_endpoint(webhook_id))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.webhook_poll_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.client.aclose()
