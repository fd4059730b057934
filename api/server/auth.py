"""API keys: `Authorization: Bearer sw_…`, stored hashed, each with a set of scopes.

Keys carry 256 random bits, so a plain SHA-256 is enough to store them: there is no
low-entropy secret for a slow hash to protect.

An ingest key is bound to what it serves: its reports (by report id) and its
Idempotency-Keys live in the key's own namespace, so no other key can update, replay or
read them, and a key created with `cameras` may report only for those cameras (ids or
shell-style patterns such as `north-*`). A replacement key can take over the namespace of
the key it replaces (`namespace_of`), so a rotated worker keeps updating its open reports.
"""

from __future__ import annotations

import fnmatch
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

from api.server.clock import now_in
from api.server.context import get_context
from api.server.problems import Problem
from api.server.tables import ApiKey


class Scope(StrEnum):
    ingest = "ingest"  # post and update cases (workers)
    open311 = "open311"  # post Open311 service requests (citizen intake)
    dispatch = "dispatch"  # read cases, evidence and changes; transition cases
    admin = "admin"  # manage keys and webhooks (and the fleet's camera definitions)
    fleet = "fleet"  # a fleet worker: heartbeat, receive its cameras, hand over their state
    department = "department"  # a department (处置单位): its dispatched cases, resolving them
    review = "review"  # the review console with de-identified evidence only: no originals


KEY_ACTOR = "key:"
# Changes made in the console were recorded as "console:<key name>" before the console
# named its user as API callers name the person acting: by name alone.
_PREFIXES = (KEY_ACTOR, "console:")


def person(actor: str) -> str:
    """The person a change's actor names, without the prefix a key's name is recorded with:
    one name for a person whether they acted in the console or through the API."""
    for prefix in _PREFIXES:
        if actor.startswith(prefix):
            return actor.removeprefix(prefix)
    return actor


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]
    namespace: str = ""
    cameras: tuple[str, ...] | None = None
    department: str | None = None  # a `department` key's own department

    @property
    def actor(self) -> str:
        """Who a change made with the key names when the caller names no one (a worker's
        reports, a box corrected through the API); the console names its user by the key's
        name, as API callers name the person acting in a transition."""
        return f"{KEY_ACTOR}{self.name}"

    def may_report_for(self, camera_id: str | None) -> bool:
        if self.cameras is None:
            return True
        return camera_id is not None and any(
            fnmatch.fnmatchcase(camera_id, pattern) for pattern in self.cameras
        )

    def check_camera(self, camera_id: str | None) -> None:
        if not self.may_report_for(camera_id):
            raise Problem(
                403,
                f"This key may not report for camera '{camera_id}'",
                kind="camera-not-allowed",
                cameras=list(self.cameras or ()),
            )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session,
    name: str,
    scopes: Sequence[Scope],
    *,
    cameras: Sequence[str] | None = None,
    namespace_of: str | None = None,
    department: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns the record and the key itself, which is never stored.

    `cameras` binds the key to those cameras; `namespace_of` (a key id) shares that key's
    reports and Idempotency-Keys, for rotating a worker's key. A `department` key names its
    department, and only such a key does."""
    if (Scope.department in scopes) != (department is not None):
        raise Problem(
            422,
            "A key has a department exactly when it has the 'department' scope",
            kind="invalid-key",
        )
    key_id = secrets.token_hex(6)
    key = f"sw_{key_id}_{secrets.token_urlsafe(32)}"
    namespace = key_id
    if namespace_of is not None:
        other = session.get(ApiKey, namespace_of)
        if other is None:
            raise Problem(422, f"No key {namespace_of} to share a namespace with", kind="not-found")
        namespace = other.namespace or other.id
    record = ApiKey(
        id=key_id,
        name=name,
        key_hash=hash_key(key),
        scopes=sorted({Scope(s).value for s in scopes}),
        namespace=namespace,
        cameras=sorted(set(cameras)) if cameras is not None else None,
        department=department,
        created_at=now_in(session),
    )
    session.add(record)
    return record, key


def principal_of(record: ApiKey) -> Principal:
    cameras = tuple(record.cameras) if record.cameras is not None else None
    return Principal(
        record.id,
        record.name,
        frozenset(record.scopes),
        record.namespace or record.id,
        cameras,
        record.department,
    )


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
    return principal_of(record)


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="streetwatch"'}
bearer = HTTPBearer(
    auto_error=False,
    description="An API key created with `streetwatch keys create`; "
    "scopes: `ingest`, `open311`, `dispatch`, `admin`, `fleet`, `department`, `review`",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that authenticates the request's key and checks it has `scope`."""

    def dependency(request: Request, credentials: Credentials) -> Principal:
        early = request.scope.get("state", {}).get("principal")  # from AuthFirst
        if isinstance(early, Principal) and scope.value in early.scopes:
            return early
        with get_context(request).db.read() as session:
            return authenticate(session, credentials.credentials if credentials else None, scope)

    dependency.__name__ = f"require_{scope}"
    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by AuthFirst
    return dependency


Ingest = Annotated[Principal, Depends(require(Scope.ingest))]
Open311Intake = Annotated[Principal, Depends(require(Scope.open311))]
Dispatch = Annotated[Principal, Depends(require(Scope.dispatch))]
Admin = Annotated[Principal, Depends(require(Scope.admin))]
Fleet = Annotated[Principal, Depends(require(Scope.fleet))]
DepartmentKey = Annotated[Principal, Depends(require(Scope.department))]
