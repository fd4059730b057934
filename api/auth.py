"""API keys: `Authorization: Bearer sw_…`, stored hashed, each with a set of scopes.

Keys carry 256 random bits, so a plain SHA-256 is enough to store them: there is no
low-entropy secret for a slow hash to protect.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.context import get_context
from api.problems import Problem
from api.tables import ApiKey, utcnow


class Scope(StrEnum):
    ingest = "ingest"  # post and update cases (workers)
    dispatch = "dispatch"  # read cases, evidence and changes; transition cases
    admin = "admin"  # manage keys and webhooks


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"key:{self.name}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, scopes: Sequence[Scope]) -> tuple[ApiKey, str]:
    """Store a new key; returns the record and the key itself, which is never stored."""
    key_id = secrets.token_hex(6)
    key = f"sw_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=key_id,
        name=name,
        key_hash=hash_key(key),
        scopes=sorted({Scope(s).value for s in scopes}),
        created_at=utcnow(),
    )
    session.add(record)
    return record, key


def authenticate(session: Session, key: str | None, scope: Scope) -> Principal:
    if not key:
        raise Problem(401, "An API key is required", kind="unauthenticated", headers=_CHALLENGE)
    record = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    if record is None:
        raise Problem(401, "Unknown or revoked API key", kind="unauthenticated", headers=_CHALLENGE)
    if scope.value not in record.scopes:
        raise Problem(403, f"This key lacks the '{scope}' scope", kind="forbidden", scope=scope)
    return Principal(record.id, record.name, frozenset(record.scopes))


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="streetwatch"'}
bearer = HTTPBearer(
    auto_error=False,
    description="An API key created with `streetwatch keys create`; "
    "scopes: `ingest`, `dispatch`, `admin`",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that authenticates the request's key and checks it has `scope`."""

    def dependency(request: Request, credentials: Credentials) -> Principal:
        with get_context(request).db.read() as session:
            return authenticate(session, credentials.credentials if credentials else None, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


Ingest = Annotated[Principal, Depends(require(Scope.ingest))]
Dispatch = Annotated[Principal, Depends(require(Scope.dispatch))]
Admin = Annotated[Principal, Depends(require(Scope.admin))]
