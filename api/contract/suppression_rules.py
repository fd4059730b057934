"""Suppressions and schedules: the feedback loop's rules, shared by the API and the workers.

A reviewer who rejects a case as `permitted` (a licensed stall, a loading bay, a market day)
or `fixture` (a bin, a bench, a trailer that belongs there) creates a suppression for that
camera, zone, type and box; workers fetch them and stop reporting matching sites. A
suppression may expire and may apply only on a weekly schedule ("mon-fri 06:00-09:00").
Zones of the worker config carry the same kind of schedule: the hours their rules apply.

Kept free of server imports: workers use it without the service's dependencies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from api.contract.cases import Id, IncidentType, Pixel


class RejectReason(StrEnum):
    false_detection = "false_detection"  # nothing there, or not that
    permitted = "permitted"  # a licensed stall, a loading bay, a market day
    fixture = "fixture"  # a bin, a bench, a parked trailer that belongs there
    duplicate = "duplicate"
    other = "other"


# Reasons that mean "this site will keep looking like an incident, and that is fine".
SUPPRESSING: frozenset[RejectReason] = frozenset({RejectReason.permitted, RejectReason.fixture})

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
DEFAULT_TZ = "Asia/Shanghai"


def _clock(value: str) -> time:
    if value == "24:00":
        return time.max
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class Window(BaseModel):
    """Some days of the week (ISO numbers, 1 = Monday), from `start` to `end` local time; an
    `end` before `start` runs past midnight into the next day."""

    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: list(range(1, 8)),
        min_length=1,
        max_length=7,
        description="ISO weekdays, 1 = Monday",
    )
    start: str = Field(pattern=_TIME.pattern, description="HH:MM")
    end: str = Field(pattern=_TIME.pattern, description="HH:MM (24:00: midnight)")

    def contains(self, local: datetime) -> bool:
        start, end, now = _clock(self.start), _clock(self.end), local.time()
        day = local.isoweekday()
        if start <= end:
            return day in self.days and start <= now < end
        # Overnight: the evening part on a listed day, the morning part on the day after.
        yesterday = 7 if day == 1 else day - 1
        return (day in self.days and now >= start) or (yesterday in self.days and now < end)

    def text(self) -> str:
        return f"{_days_text(self.days)} {self.start}-{self.end}"


class Schedule(BaseModel):
    """When something applies: any of `windows`, in time zone `tz`."""

    model_config = ConfigDict(extra="forbid")

    tz: str = Field(DEFAULT_TZ, max_length=64, description="IANA time zone")
    windows: list[Window] = Field(
        min_length=1, max_length=16, description="when it applies: any of these"
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        return tz

    def active(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.tz))
        return any(w.contains(local) for w in self.windows)

    def text(self) -> str:
        return "; ".join(w.text() for w in self.windows)

    @classmethod
    def parse(cls, text: str, tz: str = DEFAULT_TZ) -> Self:
        """`mon-fri 06:00-09:00; sat,sun 07:00-12:00`, or `daily 22:00-06:00`."""
        windows = []
        for part in filter(None, (p.strip() for p in text.split(";"))):
            match = re.fullmatch(r"(?:(\S+)\s+)?(\d\d:\d\d)\s*-\s*(\d\d:\d\d)", part)
            if match is None:
                raise ValueError(f"not a schedule window: {part!r} (try 'mon-fri 06:00-09:00')")
            days, start, end = match.groups()
            windows.append(Window(days=_parse_days(days or "daily"), start=start, end=end))
        if not windows:
            raise ValueError("an empty schedule")
        return cls(tz=tz, windows=windows)


def _parse_days(text: str) -> list[int]:
    text = text.lower()
    if text in ("daily", "*", "every"):
        return list(range(1, 8))
    if text == "weekdays":
        return [1, 2, 3, 4, 5]
    if text == "weekends":
        return [6, 7]
    days: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        try:
            a = DAYS.index(first[:3]) + 1
            b = DAYS.index(last[:3]) + 1 if last else a
        except ValueError:
            raise ValueError(f"not a day: {item!r} (mon, tue, ... sun, or mon-fri)") from None
        days.update(range(a, b + 1) if a <= b else [*range(a, 8), *range(1, b + 1)])
    return sorted(days)


def _days_text(days: Sequence[int]) -> str:
    days = sorted(set(days))
    if days == list(range(1, 8)):
        return "daily"
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        return f"{DAYS[days[0] - 1]}-{DAYS[days[-1] - 1]}"
    return ",".join(DAYS[d - 1] for d in days)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class SuppressionOptions(BaseModel):
    """What a rejection as `permitted` or `fixture` may add to its suppression."""

    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime | None = Field(None, description="Stops applying then; null: never")
    schedule: Schedule | None = Field(None, description="Applies only then; null: always")
    min_iou: float = Field(0.3, gt=0, le=1, description="Box overlap that counts as the site")


class SuppressionRule(BaseModel):
    """One suppression as workers receive it (`GET /v1/suppressions`)."""

    id: str
    camera_id: Id
    zone_id: Id | None = Field(description="null: any zone of the camera")
    type: IncidentType
    bbox: Annotated[list[Pixel], Field(min_length=4, max_length=4)]
    min_iou: float = Field(0.3, gt=0, le=1)
    reason: RejectReason
    expires_at: datetime | None = None
    schedule: Schedule | None = None
    active: bool = True

    @model_validator(mode="after")
    def _box(self) -> Self:
        x1, y1, x2, y2 = self.bbox
        if x2 <= x1 or y2 <= y1:
            raise ValueError("bbox must be x1, y1, x2, y2 with x2 > x1 and y2 > y1")
        return self

    def in_force(self, when: datetime) -> bool:
        if not self.active or (self.expires_at is not None and when >= self.expires_at):
            return False
        return self.schedule is None or self.schedule.active(when)

    def matches(
        self, camera_id: str, zone_id: str, type_: str, box: Sequence[float], when: datetime
    ) -> bool:
        return (
            self.camera_id == camera_id
            and (self.zone_id is None or self.zone_id == zone_id)
            and self.type == type_
            and self.in_force(when)
            and iou(self.bbox, box) >= self.min_iou
        )
