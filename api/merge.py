"""Cross-report deduplication: does a new report describe an incident an open case holds?

A report matches a case of the same type that is still being worked on, was seen within
the time window and was not cleared before the report began, when one of the case's reports
is from the same camera with an overlapping site box, or from another camera within
`merge_distance_m` on the map. A camera's reports all carry the camera's own location, so
distance says nothing between two reports of one camera: there only the boxes decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.lifecycle import MERGEABLE
from api.settings import Settings
from api.tables import Case, Report

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Sighting:
    """What the matcher needs to know about a new report."""

    type: str
    camera_id: str | None
    bbox: list[float] | None
    lat: float | None
    lon: float | None
    first_seen: datetime
    last_seen: datetime


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def iou(a: list[float], b: list[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _score(s: Sighting, r: Report, settings: Settings) -> float | None:
    """A match distance (lower is closer) between the sighting and one report, or None."""
    same_camera = s.camera_id is not None and s.camera_id == r.camera_id
    if same_camera:
        overlap = s.bbox and r.bbox and iou(s.bbox, r.bbox) >= settings.merge_min_iou
        return 0.0 if overlap else None
    if None not in (s.lat, s.lon, r.lat, r.lon):
        d = haversine_m(s.lat, s.lon, r.lat, r.lon)  # type: ignore[arg-type]
        if d <= settings.merge_distance_m:
            return d
    return None


def find_match(session: Session, s: Sighting, settings: Settings) -> Case | None:
    """The open case that should absorb the sighting: the closest, then the oldest."""
    window = timedelta(seconds=settings.merge_window_s)
    candidates = session.scalars(
        select(Case)
        .where(
            Case.type == s.type,
            Case.status.in_([m.value for m in MERGEABLE]),
            Case.last_seen >= s.first_seen - window,
            Case.first_seen <= s.last_seen + window,
            # A site seen empty before this report began is a new occupation, a new case.
            or_(Case.cleared_at.is_(None), Case.cleared_at > s.first_seen),
        )
        .order_by(Case.seq)
    )
    best: tuple[float, Case] | None = None
    for case in candidates:
        scores = [d for r in case.reports if (d := _score(s, r, settings)) is not None]
        if scores and (best is None or min(scores) < best[0]):
            best = (min(scores), case)
    return best[1] if best else None
