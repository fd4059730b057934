"""监督评价: the city's figures per department, grid cell, incident type or camera, read off
the cases and their histories.

For each group (duplicates left out: they are counted in the case they joined):

    reported          cases opened
    accepted          ever accepted (立案)                  acceptance_rate = accepted / reported
    dispatched        ever dispatched (派遣)
    resolved          resolved or closed now, by a resolution that stood
    resolved_on_time  ... resolved at or before the deadline  on_time_rate = that / dispatched
    closed            closed (核查结案)                      closure_rate = closed / accepted
    overdue_now       dispatched and past the deadline now

and the median and 90th percentile (linear interpolation) of each step's time in seconds:
to_accept (opened -> first accepted), to_dispatch (-> first dispatched), to_resolve (first
dispatched -> the resolution that stood), to_close (that resolution -> closed).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server.tables import Case, Change

STEPS = ("to_accept", "to_dispatch", "to_resolve", "to_close")
COUNTS = (
    "reported",
    "accepted",
    "dispatched",
    "resolved",
    "resolved_on_time",
    "closed",
    "overdue_now",
)
NONE = "(none)"  # the group of cases with no department, grid or camera


class GroupBy(StrEnum):
    department = "department"
    grid = "grid"
    type = "type"
    camera = "camera"


@dataclass
class _Group:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})


def _key(case: Case, by: GroupBy) -> str:
    value = {
        GroupBy.department: case.department,
        GroupBy.grid: case.grid,
        GroupBy.type: case.type,
        GroupBy.camera: case.camera_id,
    }[by]
    return value or NONE


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median_s": None, "p90_s": None}
    arr = np.asarray(values, dtype=np.float64)
    median, p90 = np.percentile(arr, [50, 90])
    return {"n": len(values), "median_s": round(float(median), 3), "p90_s": round(float(p90), 3)}


def statistics(
    session: Session,
    by: GroupBy,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """One row per group, sorted by key; cases opened in [since, until) when given."""
    wanted = [Case.status != CaseStatus.duplicate]
    if since is not None:
        wanted.append(Case.created_at >= since)
    if until is not None:
        wanted.append(Case.created_at < until)
    cases = {c.seq: c for c in session.scalars(select(Case).where(*wanted))}
    moves: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    # Joined rather than listed by seq: a city's year of cases exceeds a query's parameters.
    rows = session.execute(
        select(Change.case_seq, Change.to_status, Change.at)
        .join(Case, Case.seq == Change.case_seq)
        .where(Change.kind == "transition", *wanted)
        .order_by(Change.seq)
    )
    for seq, to_status, at in rows:
        moves[seq].append((to_status, at))
    groups: dict[str, _Group] = defaultdict(_Group)
    for seq, case in cases.items():
        g = groups[_key(case, by)]
        _count(g, case, moves[seq], now)
    return [_row(key, g) for key, g in sorted(groups.items())]


def _first(moves: list[tuple[str, datetime]], status: CaseStatus) -> datetime | None:
    return next((at for to, at in moves if to == status), None)


def _count(g: _Group, case: Case, moves: list[tuple[str, datetime]], now: datetime) -> None:
    c, status = g.counts, CaseStatus(case.status)
    c["reported"] += 1
    accepted = _first(moves, CaseStatus.accepted)
    dispatched = _first(moves, CaseStatus.dispatched)
    resolutions = [at for to, at in moves if to == CaseStatus.resolved]
    stood = (
        resolutions[-1]
        if resolutions and status in (CaseStatus.resolved, CaseStatus.closed)
        else None
    )
    closed = _first(moves, CaseStatus.closed)
    if accepted is not None:
        c["accepted"] += 1
        g.times["to_accept"].append((accepted - case.created_at).total_seconds())
    if dispatched is not None:
        c["dispatched"] += 1
        if accepted is not None:
            g.times["to_dispatch"].append((dispatched - accepted).total_seconds())
    if stood is not None:
        c["resolved"] += 1
        if case.deadline is not None and stood <= case.deadline:
            c["resolved_on_time"] += 1
        if dispatched is not None:
            g.times["to_resolve"].append((stood - dispatched).total_seconds())
    if status == CaseStatus.closed:
        c["closed"] += 1
        if stood is not None and closed is not None:
            g.times["to_close"].append((closed - stood).total_seconds())
    if status == CaseStatus.dispatched and case.deadline is not None and case.deadline <= now:
        c["overdue_now"] += 1


def _row(key: str, g: _Group) -> dict[str, Any]:
    c = g.counts
    return {
        "key": key,
        **c,
        "acceptance_rate": _ratio(c["accepted"], c["reported"]),
        "on_time_rate": _ratio(c["resolved_on_time"], c["dispatched"]),
        "closure_rate": _ratio(c["closed"], c["accepted"]),
        "times": {s: _summary(g.times[s]) for s in STEPS},
    }


def to_csv(by: GroupBy, rows: list[dict[str, Any]]) -> str:
    """The rows flattened: one column per count and rate, `<step>_n/_median_s/_p90_s`."""
    out = io.StringIO()
    header = [by.value, *COUNTS, "acceptance_rate", "on_time_rate", "closure_rate"]
    header += [f"{s}_{m}" for s in STEPS for m in ("n", "median_s", "p90_s")]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        line = [r["key"], *(r[k] for k in COUNTS)]
        line += [r["acceptance_rate"], r["on_time_rate"], r["closure_rate"]]
        line += [r["times"][s][m] for s in STEPS for m in ("n", "median_s", "p90_s")]
        writer.writerow(["" if v is None else v for v in line])
    return out.getvalue()
