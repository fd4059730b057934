"""Checks beyond the schema: values every database can store, and that make sense together.

The schema (`api.contract`) already refuses non-finite numbers, over-long strings and control
characters. Here: timestamps in a range every backend and every later computation can hold
(from 2000 to a little past now, where `max_clock_skew_s` is the "little"), times in order,
boxes with x2 > x1 and y2 > y1 that lie on their image. Every fault is listed at once, as a
422 problem.

A site box (a report's, a suppression's) is in pixels of the camera's frame. The API knows a
frame's size only from evidence images, which are the unaltered frames: the largest image
the request attaches, else the largest stored from that camera (`api.server.evidence.camera_frame`).
Where neither is known, the box must at least not reach left of or above the frame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from api.contract import CaseReport, EvidenceRef, Observation
from api.server.problems import Problem

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_SEQ = 2**31 - 1  # sequence columns are 32-bit on PostgreSQL
_DIGITS = re.compile(r"[0-9]{1,10}")
EDGE_PX = 1.0  # a box may reach this far past the image's edges: rounding, not a fault
Size = tuple[int, int]  # width, height in pixels


def on_image(bbox: Sequence[float], size: Size | None) -> bool:
    """Whether `bbox` (x1, y1, x2, y2) is a box on an image of `size`; of unknown size, one
    with x2 > x1 and y2 > y1 that starts on it."""
    x1, y1, x2, y2 = bbox
    if not (-EDGE_PX <= x1 < x2 and -EDGE_PX <= y1 < y2):
        return False
    return size is None or (x2 <= size[0] + EDGE_PX and y2 <= size[1] + EDGE_PX)


def largest(sizes: Sequence[Size]) -> Size | None:
    """The frame that holds every image of `sizes` (evidence may also be crops of it)."""
    return (max(w for w, _ in sizes), max(h for _, h in sizes)) if sizes else None


class Faults:
    def __init__(self, field: str) -> None:
        self.field = field
        self.errors: list[dict[str, Any]] = []

    def add(self, loc: list[str | int], msg: str, type_: str = "value_error") -> None:
        self.errors.append({"loc": [self.field, *loc], "msg": msg, "type": type_})

    def time(self, loc: list[str | int], ts: datetime | None, latest: datetime) -> None:
        if ts is None:
            return
        try:
            utc = ts.astimezone(UTC)
        except (OverflowError, ValueError):
            self.add(loc, "is out of range", "datetime_range")
            return
        if utc < EARLIEST:
            self.add(loc, f"is before {EARLIEST:%Y-%m-%d}", "datetime_range")
        elif utc > latest:
            self.add(loc, "is in the future", "datetime_future")

    def site_box(self, loc: list[str | int], bbox: Sequence[float], frame: Size | None) -> None:
        x1, y1, x2, y2 = bbox
        if x2 <= x1:
            self.add(loc, "needs x2 > x1")
        if y2 <= y1:
            self.add(loc, "needs y2 > y1")
        if x2 > x1 and y2 > y1 and not on_image(bbox, frame):
            where = f"the camera's {frame[0]}x{frame[1]} frame" if frame else "the frame"
            self.add(loc, f"{list(bbox)} is not a box on {where}", "box_off_frame")

    def raise_any(self, model: str) -> None:
        if self.errors:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])} {e['msg']}" for e in self.errors
            )
            raise Problem(
                422,
                f"The {model} is not consistent: {detail}",
                kind="invalid-body",
                errors=self.errors,
            )


def latest_allowed(now: datetime, skew_s: float) -> datetime:
    return now + timedelta(seconds=skew_s)


def _evidence(faults: Faults, refs: list[EvidenceRef], latest: datetime) -> None:
    for i, ref in enumerate(refs):
        faults.time(["evidence", i, "captured_at"], ref.captured_at, latest)


def check_report(
    report: CaseReport, now: datetime, skew_s: float, frame: Size | None = None
) -> None:
    """`now`: the server's clock; `frame`: the camera's frame size where known (see the
    module's docstring)."""
    latest = latest_allowed(now, skew_s)
    f = Faults("case")
    for name in ("first_seen", "confirmed_at", "last_seen", "cleared_at"):
        f.time([name], getattr(report, name), latest)
    if not f.errors:
        if report.confirmed_at < report.first_seen:
            f.add(["confirmed_at"], "is before first_seen")
        if report.last_seen < report.confirmed_at:
            f.add(["last_seen"], "is before confirmed_at")
        if report.cleared_at is not None and report.cleared_at < report.first_seen:
            f.add(["cleared_at"], "is before first_seen")
    f.site_box(["bbox"], report.bbox, frame)
    _evidence(f, report.evidence, latest)
    if not f.errors:
        for i, ref in enumerate(report.evidence):
            if ref.kind == "dwell" and not report.first_seen <= ref.captured_at <= report.last_seen:
                f.add(
                    ["evidence", i, "captured_at"],
                    "a dwell thumbnail is taken between first_seen and last_seen",
                )
    f.raise_any("report")


def check_site_box(field: str, bbox: Sequence[float], frame: Size | None, model: str) -> None:
    """A site box given on its own (a suppression's): a 422 naming `field`.bbox if off it."""
    f = Faults(field)
    f.site_box(["bbox"], bbox, frame)
    f.raise_any(model)


def check_observation(observation: Observation, now: datetime, skew_s: float) -> None:
    latest = latest_allowed(now, skew_s)
    f = Faults("observation")
    f.time(["last_seen"], observation.last_seen, latest)
    f.time(["cleared_at"], observation.cleared_at, latest)
    _evidence(f, observation.evidence, latest)
    f.raise_any("observation")


def query_time(ts: datetime | None, name: str) -> datetime | None:
    """A timestamp from a query: with an offset, and one the database can compare."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise Problem(400, f"{name} needs a UTC offset", kind="naive-timestamp")
    try:
        utc = ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Problem(400, f"{name} is out of range", kind="invalid-timestamp") from None
    return utc


def sequence(raw: str, name: str = "cursor") -> int:
    """A non-negative sequence number written in ASCII digits, within the column's range."""
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_SEQ:
        raise Problem(400, f"Invalid {name}", kind=f"invalid-{name}")
    return int(raw)
