"""Checks beyond the schema: values every database can store, and that make sense together.

The schema (`api.contract`) already refuses non-finite numbers, over-long strings and control
characters. Here: timestamps in a range every backend and every later computation can hold
(from 2000 to a little past now, where `max_clock_skew_s` is the "little"), times in order,
boxes with x2 > x1 and y2 > y1. Every fault is listed at once, as a 422 problem.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from api.contract import CaseReport, EvidenceRef, Observation
from api.server.problems import Problem

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_SEQ = 2**31 - 1  # sequence columns are 32-bit on PostgreSQL
_DIGITS = re.compile(r"[0-9]{1,10}")


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


def latest_allowed(skew_s: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=skew_s)


def _evidence(faults: Faults, refs: list[EvidenceRef], latest: datetime) -> None:
    for i, ref in enumerate(refs):
        faults.time(["evidence", i, "captured_at"], ref.captured_at, latest)


def check_report(report: CaseReport, skew_s: float) -> None:
    latest = latest_allowed(skew_s)
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
    x1, y1, x2, y2 = report.bbox
    if x2 <= x1:
        f.add(["bbox"], "needs x2 > x1")
    if y2 <= y1:
        f.add(["bbox"], "needs y2 > y1")
    _evidence(f, report.evidence, latest)
    f.raise_any("report")


def check_observation(observation: Observation, skew_s: float) -> None:
    latest = latest_allowed(skew_s)
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
