"""The stored records. The schema itself is owned by the migrations in `api/migrations`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # Whose reports and Idempotency-Keys the key works with: its own id unless it took over
    # another key's (rotation). NULL on keys from before 0002: their own id.
    namespace: Mapped[str | None] = mapped_column(String(32))
    cameras: Mapped[list[str] | None] = mapped_column(JSON)  # None: any camera
    # A department's key (scope `department`) sees and resolves only the cases sent to it.
    department: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Case(Base):
    __tablename__ = "cases"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    event_code: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    origin_report_id: Mapped[str] = mapped_column(String(128))
    camera_id: Mapped[str | None] = mapped_column(String(128))
    zone_id: Mapped[str | None] = mapped_column(String(128))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(Text)
    grid: Mapped[str | None] = mapped_column(String(64))
    # The object's own place (from a calibrated camera's report), not the camera's.
    position_lat: Mapped[float | None] = mapped_column(Float)
    position_lon: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    class_name: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    bbox: Mapped[list[float] | None] = mapped_column(JSON)
    # A reviewer's correction of the box, in the evidence images' pixels: training data.
    reviewed_bbox: Mapped[list[float] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    # A parking case's licence plate: its most confident report's (personal data: never in
    # Open311's output).
    plate: Mapped[str | None] = mapped_column(String(16))
    plate_confidence: Mapped[float | None] = mapped_column(Float)
    duplicate_of: Mapped[str | None] = mapped_column(String(40))
    # The dispatch desk (api/server/desk.py): who handles it, by when, and what the camera says.
    department: Mapped[str | None] = mapped_column(String(200))
    urgency: Mapped[str | None] = mapped_column(String(16))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when announced
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verification: Mapped[str | None] = mapped_column(String(16))  # verified | not_verified
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    reports: Mapped[list[Report]] = relationship(
        back_populates="case", order_by="Report.received_at", lazy="selectin"
    )
    evidence: Mapped[list[CaseEvidence]] = relationship(order_by="CaseEvidence.id", lazy="selectin")

    __table_args__ = (
        Index("ix_cases_type_status", "type", "status"),
        Index("ix_cases_grid", "grid"),
        Index("ix_cases_first_seen", "first_seen"),
        Index("ix_cases_department_status", "department", "status"),
        Index("ix_cases_plate", "plate"),
    )


class Report(Base):
    """One worker's (or Open311 client's) report, as absorbed into a case."""

    __tablename__ = "reports"

    # Report ids are the sending key's own: (namespace, id) is the report.
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    case_seq: Mapped[int] = mapped_column(ForeignKey("cases.seq"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "worker" | "open311"
    camera_id: Mapped[str | None] = mapped_column(String(128), index=True)
    zone_id: Mapped[str | None] = mapped_column(String(128))
    bbox: Mapped[list[float] | None] = mapped_column(JSON)
    lat: Mapped[float | None] = mapped_column(Float)  # the camera's location
    lon: Mapped[float | None] = mapped_column(Float)
    # The object's ground point through the camera's calibration; None when uncalibrated.
    position_lat: Mapped[float | None] = mapped_column(Float)
    position_lon: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The plate its worker's vote gave (the latest observation's), with the vote's confidence.
    plate: Mapped[str | None] = mapped_column(String(16))
    plate_confidence: Mapped[float | None] = mapped_column(Float)
    # A newer report of the same camera and zone took this open one over (a restarted
    # worker's): it no longer holds its case open.
    superseded_by: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # as received, for audit

    case: Mapped[Case] = relationship(back_populates="reports")


class Evidence(Base):
    """An image in the content-addressed store."""

    __tablename__ = "evidence"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Pixel size, so boxes can be drawn over the image; null for images stored before 0005.
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # When retention deleted the file of this original (its record and links stay).
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaseEvidence(Base):
    __tablename__ = "case_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_seq: Mapped[int] = mapped_column(ForeignKey("cases.seq"))
    sha256: Mapped[str] = mapped_column(ForeignKey("evidence.sha256"))
    kind: Mapped[str] = mapped_column(String(16))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    report_id: Mapped[str | None] = mapped_column(String(128))
    camera_id: Mapped[str | None] = mapped_column(String(128))
    # What the worker saw on the image (EvidenceBox dicts); the image itself is unaltered.
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Its de-identified rendition (heads and plates obscured); null for evidence stored
    # before renditions, and for images of which none is made (a plate crop).
    rendition_sha256: Mapped[str | None] = mapped_column(ForeignKey("evidence.sha256"))
    image: Mapped[Evidence] = relationship(lazy="joined", foreign_keys=[sha256])

    __table_args__ = (Index("ux_case_evidence", "case_seq", "sha256", unique=True),)


class Change(Base):
    """One entry of the change feed and of the case's history; never updated or deleted."""

    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Empty for events about a webhook endpoint rather than a case (webhook_disabled).
    case_seq: Mapped[int | None] = mapped_column(ForeignKey("cases.seq"), index=True)
    case_id: Mapped[str | None] = mapped_column(String(40))
    # created | merged | observation | transition | box_corrected | webhook_disabled
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # details and the case as it then was

    __table_args__ = (Index("ix_changes_at", "at"),)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency"

    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_idempotency_created_at", "created_at"),)


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # Encrypted with the server secret (`api.server.secrets`); needed in clear only to sign.
    secret: Mapped[str] = mapped_column(String(255))
    event_types: Mapped[list[str] | None] = mapped_column(JSON)  # None: every event
    # Which evidence its payloads link: `deidentified` renditions (the default) or `original`.
    evidence: Mapped[str] = mapped_column(String(16), server_default="deidentified")
    active: Mapped[bool] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The first failed attempt since the last success; None while it is delivering.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """The delivery log: one row per (webhook, change), updated on each attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id"), index=True)
    change_seq: Mapped[int] = mapped_column(ForeignKey("changes.seq"))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who is sending it now, and until when the claim holds (longer than a send can take).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)


# -- The review console and its feedback loop (issue 13) ------------------------------------


class Suppression(Base):
    """A site workers stop reporting: a camera, zone, type and box a reviewer found to be
    permitted or a fixture; optionally until `expires_at` and only on `schedule`."""

    __tablename__ = "suppressions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128), index=True)
    zone_id: Mapped[str | None] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    bbox: Mapped[list[float]] = mapped_column(JSON)
    min_iou: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str | None] = mapped_column(String(40))  # the rejection that made it
    note: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CameraHealth(Base):
    """A camera's state as its worker last reported it, with a recent picture."""

    __tablename__ = "camera_health"

    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # up | reconnecting | dead | frozen | ...
    detail: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # in this state since
    last_frame_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reported_by: Mapped[str] = mapped_column(String(200))
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    thumbnail_type: Mapped[str | None] = mapped_column(String(32))
    thumbnail_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OriginalView(Base):
    """The audit log of originals shown to a person: every time the console served an
    original evidence image (not its de-identified rendition). Never updated."""

    __tablename__ = "original_views"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # console:<key name>
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str | None] = mapped_column(String(40), index=True)
    what: Mapped[str] = mapped_column(String(16))  # image | annotated


class ConsoleSession(Base):
    """A signed-in console user: a key exchanged for a session. Only the token's hash is
    stored; the key itself is never kept."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    flash: Mapped[str | None] = mapped_column(Text)


class FleetCamera(Base):
    """A camera a fleet worker watches: its definition as the worker's config takes it (the
    API stores it as given; workers validate it), edited through `/v1/fleet/cameras`."""

    __tablename__ = "fleet_cameras"

    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))


class FleetWorker(Base):
    """A fleet worker as its last heartbeat left it: the cameras it runs, and those the
    answer gave it (it may be starting them: nobody else gets them meanwhile)."""

    __tablename__ = "fleet_workers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The first heartbeat of this run; for a worker that left cleanly, when it left (after
    # its last_seen, which marks it as not live: api/server/routes/fleet.py).
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    running: Mapped[list[str]] = mapped_column(JSON)
    assigned: Mapped[list[str]] = mapped_column(JSON)


class FleetCameraState(Base):
    """A camera's open sites as its worker last handed them over (an opaque archive), for
    whichever worker watches the camera next."""

    __tablename__ = "fleet_camera_state"

    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    saved_by: Mapped[str] = mapped_column(String(128))


# -- The dispatch desk (issue 27) -----------------------------------------------------------


class GridCell(Base):
    """A cell of the city's grid (单元网格), with its bounds for a quick first filter."""

    __tablename__ = "grid_cells"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(64))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)  # GeoJSON Polygon | MultiPolygon
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))


class DeskRouting(Base):
    """The routing table (api/server/routing.py) as imported: one row."""

    __tablename__ = "desk_routing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))
