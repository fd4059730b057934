"""Console sign-in: an API key with the `dispatch` (or `review`) scope exchanged for a session.

The session token lives in an HttpOnly, SameSite=Strict cookie (Secure over TLS), scoped to
`/console`; only its hash is stored. Every state change carries the session's CSRF token
(form field or `X-CSRF-Token` header) and, where the browser sends one, a same-origin
`Origin`. Sessions end at logout, after `IDLE` without use, after `LIFETIME` in all, and
as soon as their key is revoked. The key itself is never stored, put in a URL or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.server.auth import Principal, Scope, hash_key, principal_of
from api.server.clock import wall
from api.server.problems import Problem
from api.server.tables import ApiKey, ConsoleSession

COOKIE = "sw_session"
LOGIN_COOKIE = "sw_login"
LANG_COOKIE = "sw_lang"
PATH = "/console"
LIFETIME = timedelta(hours=12)
IDLE = timedelta(hours=1)
TOUCH_EVERY = timedelta(minutes=1)
# Every console page reads cases, which needs `dispatch` (originals, actions) or `review`
# (de-identified evidence only, no actions): a key with neither (an admin-only key) is
# refused at sign-in with that reason, not let in to pages that all answer 403.
SIGN_IN_SCOPES = (Scope.dispatch, Scope.review)


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in page, fetches get 401."""


@dataclass(frozen=True)
class User:
    principal: Principal
    csrf: str
    token_hash: str

    def may(self, scope: Scope | str) -> bool:
        return Scope(scope).value in self.principal.scopes


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_key(session: Session, key: str) -> ApiKey | None:
    """The record of a known, unrevoked key; None for any other. A read: a wrong key never
    waits for the write lock."""
    return session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )


def may_sign_in(record: ApiKey) -> bool:
    return any(scope.value in record.scopes for scope in SIGN_IN_SCOPES)


def sign_in(session: Session, key_id: str) -> tuple[str, ConsoleSession] | None:
    """A new session for the key (under the write lock); None if it was revoked meanwhile."""
    record = session.get(ApiKey, key_id)
    if record is None or record.revoked_at is not None or not may_sign_in(record):
        return None
    now = wall()  # a session's life is the cookie's, on the browser's (wall) clock
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(
        token_hash=_token_hash(token),
        api_key_id=record.id,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + LIFETIME,
        last_used_at=now,
    )
    session.add(row)
    return token, row


def current_user(request: Request) -> User:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        raise SignInRequired
    ctx = request.app.state.ctx
    token_hash = _token_hash(token)
    now = wall()
    with ctx.db.read() as session:
        row = session.get(ConsoleSession, token_hash)
        record = session.get(ApiKey, row.api_key_id) if row else None
    if row is None or record is None or record.revoked_at is not None:
        raise SignInRequired
    if now >= row.expires_at or now - row.last_used_at >= IDLE:
        end(request, token_hash)
        raise SignInRequired
    if now - row.last_used_at >= TOUCH_EVERY:
        with ctx.db.write() as session:
            fresh = session.get(ConsoleSession, token_hash)
            if fresh is not None:
                fresh.last_used_at = now
    return User(principal_of(record), row.csrf, token_hash)


def end(request: Request, token_hash: str) -> None:
    with request.app.state.ctx.db.write() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


def take_flash(request: Request, user: User) -> str | None:
    with request.app.state.ctx.db.read() as session:
        row = session.get(ConsoleSession, user.token_hash)
        flash = row.flash if row else None
    if flash:
        with request.app.state.ctx.db.write() as session:
            row = session.get(ConsoleSession, user.token_hash)
            if row is not None:
                row.flash = None
    return flash


def set_flash(request: Request, user: User, message: str) -> None:
    with request.app.state.ctx.db.write() as session:
        row = session.get(ConsoleSession, user.token_hash)
        if row is not None:
            row.flash = message[:2000]


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another origin."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def check_csrf(request: Request, expected: str, given: str | None) -> None:
    if not same_origin(request):
        raise Problem(403, "Cross-origin request refused", kind="csrf")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Problem(403, "Missing or wrong CSRF token: reload the page", kind="csrf")


def cookie_options(request: Request) -> dict[str, object]:
    secure = request.url.scheme == "https"
    return {"httponly": True, "samesite": "strict", "secure": secure, "path": PATH}
