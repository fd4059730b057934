"""Webhook delivery, signed as the Standard Webhooks spec says, retried with backoff.

Deliveries are queued in the database with the change that caused them (`api.changes`);
the dispatcher claims due ones, posts them, and logs each outcome on the delivery row.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select

from api import netpolicy
from api.db import Database
from api.metrics import Metrics
from api.schemas import EVENT_TYPES
from api.secrets import SecretError, open_sealed, seal
from api.serialize import change_out
from api.settings import Settings
from api.tables import Change, Webhook, WebhookDelivery, utcnow

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
    url: str
    secret: str | None  # None: it did not open with this server secret
    msg_id: str
    body: bytes


# What a delivery attempt may say about the receiver: its status code, or one of these.
# Never anything the receiver sent, nor what an address that was refused would have said.
REFUSED = "refused: the target is not an allowed address"
PERMANENT = frozenset({REFUSED, "secret unavailable"})


class Dispatcher:
    def __init__(
        self, db: Database, settings: Settings, metrics: Metrics, server_key: bytes
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics
        self.server_key = server_key
        self.client = httpx.Client(
            timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False
        )

    def _claim(self, limit: int = 50) -> list[_Job]:
        now = utcnow()
        # Claiming pushes next_attempt_at past the send timeout, so another dispatcher
        # (another server process) will not send the same delivery meanwhile.
        lease = timedelta(seconds=self.settings.webhook_timeout_s * 3)
        due_now = (WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        with self.db.read() as session:  # polling must not take the write lock for nothing
            if session.scalar(select(WebhookDelivery.id).where(*due_now).limit(1)) is None:
                return []
        jobs = []
        with self.db.write() as session:
            due = session.scalars(
                select(WebhookDelivery).where(*due_now).order_by(WebhookDelivery.id).limit(limit)
            ).all()
            for d in due:
                hook = session.get_one(Webhook, d.webhook_id)
                change = session.get_one(Change, d.change_seq)
                d.next_attempt_at = now + lease
                out = change_out(change)
                payload = {
                    "type": EVENT_TYPES[change.kind],
                    "timestamp": out.at.isoformat(),
                    "data": out.model_dump(mode="json"),
                }
                body = json.dumps(payload, separators=(",", ":")).encode()
                try:
                    secret: str | None = open_sealed(self.server_key, hook.secret, hook.id)
                except SecretError:
                    secret = None
                jobs.append(_Job(d.id, hook.url, secret, f"msg_{change.seq}", body))
        return jobs

    def _send(self, job: _Job) -> tuple[int | None, str | None]:
        if job.secret is None:
            return None, "secret unavailable"
        try:
            target, addresses = netpolicy.check(job.url, self.settings.webhook_allow_networks)
        except netpolicy.TargetRefused as exc:
            log.warning("webhook delivery %d refused: %s", job.delivery_id, exc)
            return None, REFUSED
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
            with self.client.stream(
                "POST", url, content=job.body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        return status, None if 200 <= status < 300 else f"HTTP {status}"

    def _record(self, job: _Job, status_code: int | None, error: str | None) -> None:
        now = utcnow()
        with self.db.write() as session:
            d = session.get_one(WebhookDelivery, job.delivery_id)
            d.attempts += 1
            d.last_attempt_at = now
            d.last_status_code = status_code
            d.last_error = error
            backoff = self.settings.webhook_backoff_s
            if status_code is not None and error is None:
                d.status, d.delivered_at, d.next_attempt_at = "delivered", now, None
                outcome = "delivered"
            elif d.attempts > len(backoff) or error in PERMANENT:
                d.status, d.next_attempt_at = "failed", None
                outcome = "failed"
            else:
                d.next_attempt_at = now + timedelta(seconds=backoff[d.attempts - 1])
                outcome = "retry"
        self.metrics.webhook_attempts.labels(outcome).inc()

    def run_once(self) -> int:
        """Send every due delivery once; returns how many were attempted."""
        jobs = self._claim()
        for job in jobs:
            self._record(job, *self._send(job))
        return len(jobs)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.webhook_poll_s)

    def close(self) -> None:
        self.client.close()
