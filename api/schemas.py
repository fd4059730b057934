"""Response and request bodies of the case API (beyond the worker contract in `contract`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from api.auth import Scope
from api.contract import CaseStatus, IncidentType, Location

ChangeKind = Literal["created", "merged", "observation", "transition"]
EVENT_TYPES: dict[str, str] = {
    "created": "case.created",
    "merged": "case.merged",
    "observation": "case.observed",
    "transition": "case.transitioned",
}


class EvidenceOut(BaseModel):
    sha256: str
    kind: str
    captured_at: datetime
    camera_id: str | None
    report_id: str | None
    url: str = Field(description="Path of the image: `GET /v1/evidence/{sha256}`")


class CaseOut(BaseModel):
    id: str
    type: IncidentType
    event_code: str
    status: CaseStatus
    camera_id: str | None = Field(description="Camera of the first report")
    zone_id: str | None
    location: Location
    first_seen: datetime
    confirmed_at: datetime
    last_seen: datetime
    cleared_at: datetime | None = Field(description="Set once every report is cleared")
    class_name: str | None
    confidence: float | None
    bbox: list[float] | None
    description: str | None
    evidence: list[EvidenceOut]
    report_count: int
    report_ids: list[str]
    sources: list[str] = Field(description="Cameras (or `open311`) that reported it")
    duplicate_of: str | None
    created_at: datetime
    updated_at: datetime


class ChangeOut(BaseModel):
    """One change of one case: an entry of the change feed and of the case history."""

    seq: int = Field(description="Position in the change feed; strictly increasing")
    kind: ChangeKind
    event_type: str = Field(description="The webhook event type for this change")
    case_id: str
    at: datetime
    actor: str = Field(description="Who made the change")
    api_key_id: str | None
    from_status: CaseStatus | None
    to_status: CaseStatus
    note: str | None
    data: dict[str, Any] = Field(description="Details; `case` holds the case after the change")


class CaseDetail(CaseOut):
    history: list[ChangeOut]


class CasePage(BaseModel):
    items: list[CaseOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class ChangePage(BaseModel):
    changes: list[ChangeOut]
    next_cursor: str = Field(description="Pass as `cursor` on the next poll (also when empty)")


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: CaseStatus
    actor: str = Field(min_length=1, max_length=200, description="The person or system acting")
    note: str | None = Field(None, max_length=4000)
    expected_status: CaseStatus | None = Field(
        None, description="Refuse (409) unless the case is in this status: optimistic locking"
    )
    duplicate_of: str | None = Field(None, description="Required when `to` is `duplicate`")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself; shown only this once")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    event_types: list[str] | None = Field(
        None, description=f"Subset of {sorted(EVENT_TYPES.values())}; null for all"
    )


class WebhookOut(BaseModel):
    id: str
    url: str
    event_types: list[str] | None
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signing secret (`whsec_…`); shown only this once")


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str
    change_seq: int
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
