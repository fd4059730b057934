"""Response and request bodies of the case API (beyond the worker contract in `contract`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

from api.contract import CaseStatus, EvidenceBox, Id, IncidentType, Location, Position, Storable
from api.contract.suppression_rules import RejectReason, SuppressionOptions
from api.server.auth import Scope
from api.server.routing import Department, Urgency

Name = Annotated[str, Field(min_length=1, max_length=200), Storable]
Note = Annotated[str, Field(max_length=4000), Storable]
CameraPattern = Annotated[str, Field(min_length=1, max_length=128), Storable]
WebhookUrl = Annotated[
    AnyHttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["http", "https"])
]

ChangeKind = Literal[
    "created",
    "merged",
    "observation",
    "transition",
    "box_corrected",
    "webhook_disabled",
    "overdue",
    "verified",
]
EVENT_TYPES: dict[str, str] = {
    "created": "case.created",
    "merged": "case.merged",
    "observation": "case.observed",
    "transition": "case.transitioned",
    "box_corrected": "case.box_corrected",
    "webhook_disabled": "webhook.disabled",
    "overdue": "case.overdue",  # announced once, when a dispatched case passes its deadline
    "verified": "case.verified",  # the camera saw the object gone (核查)
}


class RenditionOut(BaseModel):
    sha256: str
    url: str = Field(description="Path of the rendition: `GET /v1/evidence/{sha256}`")
    media_url: str | None = Field(
        None,
        description="A signed link to it, fetchable without a key (de-identified webhook "
        "payloads only)",
    )


class EvidenceOut(BaseModel):
    sha256: str
    kind: str
    captured_at: datetime
    camera_id: str | None
    report_id: str | None
    url: str = Field(description="Path of the image: `GET /v1/evidence/{sha256}`")
    width: int | None = Field(description="Image size in pixels; null for old images")
    height: int | None
    boxes: list[EvidenceBox] = Field(
        description="What the worker saw on the image, which is stored unaltered"
    )
    annotated_url: str = Field(
        description="The image with the boxes (and the reviewer's correction) drawn: "
        "`GET /v1/cases/{id}/evidence/{sha256}/annotated`"
    )
    deidentified: RenditionOut | None = Field(
        None,
        description="Its de-identified rendition (heads and plates obscured), what public "
        "outputs show; null for images stored before renditions and for `plate` crops",
    )
    removed_at: datetime | None = Field(
        None, description="When retention deleted the original (the rendition stays)"
    )


class CaseOut(BaseModel):
    id: str
    type: IncidentType
    event_code: str
    status: CaseStatus
    camera_id: str | None = Field(description="Camera of the first report")
    zone_id: str | None
    location: Location = Field(description="The first report's camera's own place")
    position: Position | None = Field(
        description="Where the object is: its ground point from a calibrated camera's report "
        "(or an Open311 pin); null when no report placed it"
    )
    first_seen: datetime
    confirmed_at: datetime
    last_seen: datetime
    cleared_at: datetime | None = Field(
        description="Set once every report is cleared (a report superseded by a newer one of "
        "its camera and zone counts as finished)"
    )
    class_name: str | None
    confidence: float | None
    bbox: list[float] | None
    reviewed_bbox: list[float] | None = Field(
        description="A reviewer's correction of the box, in the evidence images' pixels"
    )
    description: str | None
    evidence: list[EvidenceOut]
    report_count: int
    report_ids: list[str]
    sources: list[str] = Field(description="Cameras (or `open311`) that reported it")
    duplicate_of: str | None = Field(
        description="The case this one was merged into; its reports and evidence moved there"
    )
    department: str | None = Field(
        description="Responsible department (处置单位): the routing table's proposal once "
        "accepted, the one it was dispatched to once dispatched"
    )
    urgency: Urgency | None
    dispatched_at: datetime | None
    deadline: datetime | None = Field(description="处置时限: when it must be resolved by")
    overdue: bool = Field(description="Dispatched and past its deadline")
    resolved_at: datetime | None = Field(description="When the department last resolved it")
    verification: Literal["verified", "not_verified"] | None = Field(
        description="The camera's 核查: `verified` once it saw the object gone; "
        "`not_verified` when it still saw it after the department resolved the case"
    )
    verified_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ChangeOut(BaseModel):
    """One change of one case: an entry of the change feed and of the case history."""

    seq: int = Field(description="Position in the change feed; strictly increasing")
    kind: ChangeKind
    event_type: str = Field(description="The webhook event type for this change")
    case_id: str | None = Field(description="Null only for `webhook_disabled`")
    at: datetime
    actor: str = Field(description="Who made the change")
    api_key_id: str | None
    from_status: CaseStatus | None
    to_status: CaseStatus | None = Field(description="Null only for `webhook_disabled`")
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
    actor: Name = Field(description="The person or system acting")
    note: Note | None = None
    expected_status: CaseStatus | None = Field(
        None, description="Refuse (409) unless the case is in this status: optimistic locking"
    )
    duplicate_of: Id | None = Field(None, description="Required when `to` is `duplicate`")
    reason: RejectReason | None = Field(
        None,
        description="Why, for `rejected`; `permitted` and `fixture` suppress the case's site "
        "(camera, zone, type, box) from then on: workers stop reporting it",
    )
    suppress: SuppressionOptions | None = Field(
        None, description="Expiry and schedule of the suppression a rejection creates"
    )
    department: Department | None = Field(
        None,
        description="For `dispatched`: the department to send it to; default: the one the "
        "routing table gives for the case's grid cell and type",
    )
    urgency: Urgency | None = Field(
        None, description="For `dispatched`: which deadline applies; default `normal`"
    )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=8)
    cameras: list[CameraPattern] | None = Field(
        None,
        max_length=10_000,
        description="Camera ids (or shell-style patterns, `north-*`) an ingest key may report "
        "for; null: any camera",
    )
    namespace_of: Annotated[str, Field(max_length=32, pattern=r"^[0-9a-f]{1,32}$")] | None = Field(
        None,
        description="Id of a key whose reports and Idempotency-Keys this key takes over "
        "(rotating a worker's key)",
    )
    department: Department | None = Field(
        None,
        description="Required with the `department` scope, refused without: the key sees "
        "and resolves only the cases dispatched to this department",
    )


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    namespace: str = Field(description="Whose reports and Idempotency-Keys the key works with")
    cameras: list[str] | None = Field(description="Cameras it may report for; null: any")
    department: str | None = Field(description="The department a `department` key acts for")
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself; shown only this once")


EventTypes = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=16)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    event_types: (
        Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=16)] | None
    ) = Field(None, description=f"Subset of {sorted(EVENT_TYPES.values())}; null for all")
    evidence: Literal["deidentified", "original"] = Field(
        "deidentified",
        description="Which evidence its payloads link: de-identified renditions, each with a "
        "signed `media_url` (evidence without one is left out), or the originals (fetched "
        "with a `dispatch` key)",
    )


class WebhookOut(BaseModel):
    id: str
    url: str
    event_types: list[str] | None
    evidence: Literal["deidentified", "original"]
    active: bool
    created_at: datetime
    disabled_at: datetime | None = Field(description="When it stopped receiving events")
    disabled_reason: str | None = Field(
        description="Deleted, 410 Gone, or failing without a success for too long"
    )
    failing_since: datetime | None = Field(description="First failure since the last success")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Signing secret (`whsec_…`); shown only this once")


class OriginalViewOut(BaseModel):
    """One original evidence image shown to a person in the console (the audit log)."""

    id: int
    at: datetime
    actor: str = Field(description="`console:` and the signed-in key's name")
    api_key_id: str | None
    sha256: str = Field(description="The original shown")
    case_id: str | None = Field(description="The case it was shown on")
    what: Literal["image", "annotated"] = Field(description="The image, or an annotated copy")


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Changes made at or after this time")
    until: datetime | None = Field(None, description="... and before this time; null: now")
    include_delivered: bool = Field(
        False,
        description="Also send again what was delivered; by default only what failed "
        "or was never sent (say, while the endpoint was disabled)",
    )


class ReplayOut(BaseModel):
    queued: int = Field(description="Deliveries queued to be sent again")


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
