"""Cross-report deduplication: does a new report describe an incident an open case holds?

A report matches a case of the same type that is still being worked on, was seen within
the time window and was not cleared before the report began, when

- the case holds a report from the same camera: the new report's site box must overlap
  (IoU >= `merge_min_iou`) every such report still in force, whatever the map says: one
  camera sees two bays side by side as two boxes, however close their map points are;
- otherwise, the new report and one of the case's reports both carry the object's own
  position (a calibrated camera's ground point, or an Open311 pin) and they lie within
  `merge_distance_m`. A camera's `location` is the camera's own place and says nothing
  about where the object is: two cameras 11 m apart see different cars.

Without a position a report merges only with its own camera's overlapping box.

Plates come first for parking: when the new report and the case both carry a plate, the
plate decides. The same plate (or one character off, both read with at least
`merge_plate_confidence`) within `merge_plate_distance_m` merges, on any camera, calibrated or
not: the objects' positions when both have one, else the cameras' own locations (a plate
is one vehicle, so the camera's place is near enough). Different plates never merge, not
even in one site of one camera (two cars, one behind the other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.contract.suppression_rules import (
    iou,  # the one box overlap, in the worker-safe leaf module
)
from api.server.lifecycle import MERGEABLE
from api.server.settings import Settings
from api.server.tables import Case, Report

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Sighting:
    """What the matcher needs to know about a new report."""

    type: str
    camera_id: str | None
    bbox: list[float] | None
    position: tuple[float, float] | None  # the object's (lat, lon), when known
    first_seen: datetime
    last_seen: datetime
    camera_location: tuple[float, float] | None = None  # the camera's (lat, lon)
    plate: str | None = None
    plate_confidence: float | None = None


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _position(r: Report) -> tuple[float, float] | None:
    if r.position_lat is None or r.position_lon is None:
        return None
    return r.position_lat, r.position_lon


def same_plate(a: str, ca: float, b: str, cb: float, sure: float) -> bool:
    """The same plate: equal, or one character off with both reads at least `sure`."""
    if a == b:
        return True
    if len(a) != len(b) or min(ca, cb) < sure:
        return False
    return sum(x != y for x, y in zip(a, b, strict=True)) == 1


def _plate_score(s: Sighting, plated: list[Report], settings: Settings) -> float | None:
    """The distance to the nearest report of the same plate, or None (not the same plate,
    or too far). Positions when both have one, else the cameras' locations."""
    assert s.plate is not None and s.plate_confidence is not None
    sure = settings.merge_plate_confidence
    distances = []
    for r in plated:
        assert r.plate is not None and r.plate_confidence is not None
        if not same_plate(s.plate, s.plate_confidence, r.plate, r.plate_confidence, sure):
            continue
        if s.camera_id is not None and r.camera_id == s.camera_id:
            distances.append(0.0)
            continue
        here = s.position if s.position is not None and _position(r) is not None else None
        there = _position(r) if here is not None else None
        if here is None:
            here = s.camera_location
            there = (r.lat, r.lon) if r.lat is not None and r.lon is not None else None
        if here is not None and there is not None:
            distances.append(haversine_m(*here, *there))
    close = [d for d in distances if d <= settings.merge_plate_distance_m]
    return min(close) if close else None


def _case_score(s: Sighting, case: Case, settings: Settings) -> float | None:
    """A match distance (lower is closer) between the sighting and a case, or None."""
    in_force = [r for r in case.reports if r.superseded_by is None] or list(case.reports)
    plated = [r for r in in_force if r.plate is not None]
    if s.plate is not None and plated:  # the plate decides: one vehicle, or two
        return _plate_score(s, plated, settings)
    own = [r for r in in_force if s.camera_id is not None and r.camera_id == s.camera_id]
    if own:  # the camera that saw it before decides, by its boxes alone
        if s.bbox and all(r.bbox and iou(s.bbox, r.bbox) >= settings.merge_min_iou for r in own):
            return 0.0
        return None
    if s.position is None:
        return None
    distances = [haversine_m(*s.position, *p) for r in in_force if (p := _position(r)) is not None]
    close = [d for d in distances if d <= settings.merge_distance_m]
    return min(close) if close else None


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
        score = _case_score(s, case, settings)
        if score is not None and (best is None or score < best[0]):
            best = (score, case)
    return best[1] if best else None
