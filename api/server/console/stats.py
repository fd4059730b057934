"""Statistics of the review: per day, type, grid or camera, reports, cases, verdicts, the
acceptance rate and how long verdicts take; as a table, SVG charts and CSV."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape
from sqlalchemy import select

from api.server.tables import Case, Change, Report

GROUPS = ("day", "type", "grid", "camera")
REASONS = ("false_detection", "permitted", "fixture", "duplicate", "other", "unspecified")


@dataclass
class Period:
    since: date
    until: date  # inclusive
    group: str

    def query(self) -> dict[str, str]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "group": self.group,
        }

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        return (
            datetime.combine(self.since, time(), tz),
            datetime.combine(self.until + timedelta(days=1), time(), tz),
        )


def period_of(params: Mapping[str, str], tz: ZoneInfo, now: datetime) -> Period:
    """`now`: the server's clock (the default period ends today)."""
    today = now.astimezone(tz).date()

    def day(name: str, default: date) -> date:
        try:
            return date.fromisoformat(params.get(name, ""))
        except ValueError:
            return default

    until = day("until", today)
    since = day("since", until - timedelta(days=13))
    if since > until:
        since, until = until, since
    since = max(since, until - timedelta(days=366))
    group = params.get("group", "day")
    return Period(since, until, group if group in GROUPS else "day")


@dataclass
class Row:
    key: str
    reports: int = 0
    cases: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    pending: int = 0
    to_accept_s: list[float] = field(default_factory=list)
    to_close_s: list[float] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def acceptance(self) -> float | None:
        decided = self.accepted + self.rejected_total
        return self.accepted / decided if decided else None

    @property
    def median_accept_s(self) -> float | None:
        return statistics.median(self.to_accept_s) if self.to_accept_s else None

    @property
    def median_close_s(self) -> float | None:
        return statistics.median(self.to_close_s) if self.to_close_s else None


@dataclass
class Table:
    rows: list[Row]
    total: Row


def _key(
    group: str, tz: ZoneInfo, at: datetime, type_: str, grid: str | None, cam: str | None
) -> str:
    if group == "day":
        return at.astimezone(tz).date().isoformat()
    if group == "type":
        return type_
    if group == "grid":
        return grid or "—"
    return cam or "open311"


def compute(session: Any, period: Period, tz: ZoneInfo) -> Table:
    """Cases opened in the period, each counted once under its group: its verdict (accepted:
    ever accepted; rejected, with its reason; a duplicate counts as rejected as `duplicate`)
    and how long from its first report to acceptance and to closing. Reports are those
    received in the period, under their own camera."""
    start, end = period.bounds(tz)
    rows: dict[str, Row] = {}
    total = Row("total")

    def row(key: str) -> Row:
        return rows.setdefault(key, Row(key))

    cases = list(
        session.scalars(select(Case).where(Case.created_at >= start, Case.created_at < end))
    )
    by_seq = {c.seq: c for c in cases}
    verdicts: dict[int, list[Change]] = defaultdict(list)
    if by_seq:
        for change in session.scalars(
            select(Change)
            .where(Change.kind == "transition", Change.case_seq.in_(list(by_seq)))
            .order_by(Change.seq)
        ):
            verdicts[change.case_seq].append(change)
    for case in cases:
        key = _key(period.group, tz, case.created_at, case.type, case.grid, case.camera_id)
        for r in (row(key), total):
            r.cases += 1
        changes = verdicts.get(case.seq, [])
        accepted = next((c for c in changes if c.to_status == "accepted"), None)
        closed = next((c for c in changes if c.to_status == "closed"), None)
        rejected = next((c for c in changes if c.to_status in ("rejected", "duplicate")), None)
        for r in (row(key), total):
            if accepted is not None:
                r.accepted += 1
                r.to_accept_s.append((accepted.at - case.created_at).total_seconds())
            elif rejected is not None:
                reason = (
                    "duplicate"
                    if rejected.to_status == "duplicate"
                    else ((rejected.data or {}).get("reason") or "unspecified")
                )
                r.rejected[reason if reason in r.rejected else "other"] += 1
            else:
                r.pending += 1
            if closed is not None:
                r.to_close_s.append((closed.at - case.created_at).total_seconds())
    for report in session.execute(
        select(Report.received_at, Report.camera_id, Case.type, Case.grid)
        .join(Case, Case.seq == Report.case_seq)
        .where(Report.received_at >= start, Report.received_at < end)
    ):
        key = _key(period.group, tz, report[0], report[2], report[3], report[1])
        row(key).reports += 1
        total.reports += 1
    if period.group == "day":  # every day of the period, also the quiet ones
        d = period.since
        while d <= period.until:
            row(d.isoformat())
            d += timedelta(days=1)
    ordered = sorted(rows.values(), key=lambda r: r.key if period.group == "day" else -r.cases)
    return Table(ordered, total)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def to_csv(table: Table, period: Period) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        [period.group, "reports", "cases", "accepted", "rejected",
         *(f"rejected_{r}" for r in REASONS), "pending", "acceptance_rate",
         "median_to_accept_s", "median_to_close_s"]
    )  # fmt: skip
    for r in [*table.rows, table.total]:
        w.writerow(
            [r.key, r.reports, r.cases, r.accepted, r.rejected_total,
             *(r.rejected[x] for x in REASONS), r.pending,
             "" if r.acceptance is None else f"{r.acceptance:.4f}",
             "" if r.median_accept_s is None else f"{r.median_accept_s:.0f}",
             "" if r.median_close_s is None else f"{r.median_close_s:.0f}"]
        )  # fmt: skip
    return out.getvalue()


# -- charts: plain SVG, drawn on the server ---------------------------------------------

GREEN, RED, GREY, BLUE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0"


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}" '
        'class="chart">'
    )
    return Markup(head + "".join(body) + "</svg>")


def _text(x: float, y: float, value: Any, anchor: str = "start", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}>{escape(str(value))}</text>'


def per_day_chart(table: Table, t: Any) -> Markup:
    rows = table.rows
    width, height, left, bottom, top = 1360, 260, 40, 40, 20
    tick = max(1, math.ceil(max([r.cases for r in rows] + [1]) / 4))
    peak = tick * 4
    step = (width - left - 10) / max(len(rows), 1)
    bar = max(4.0, step * 0.7)
    body = []
    for i in range(0, 5):
        v = tick * i
        y = height - bottom - (height - bottom - top) * i / 4
        body.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        body.append(_text(left - 6, y + 4, f"{v:.0f}", "end", "axis"))
    scale = (height - bottom - top) / peak
    for i, r in enumerate(rows):
        x = left + i * step + (step - bar) / 2
        y = height - bottom
        for value, colour, name in (
            (r.accepted, GREEN, t("accepted_n")),
            (r.rejected_total, RED, t("rejected_n")),
            (r.pending, GREY, t("pending_n")),
        ):
            if value:
                h = value * scale
                y -= h
                body.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(r.key)} {escape(name)}: {value}</title></rect>'
                )
        if r.cases:
            body.append(_text(x + bar / 2, y - 4, r.cases, "middle", "value"))
        if len(rows) <= 16 or i % max(1, len(rows) // 12) == 0:
            body.append(_text(x + bar / 2, height - bottom + 16, r.key[5:], "middle", "axis"))
    legend_y = height - 8
    for j, (colour, name) in enumerate(
        ((GREEN, t("accepted_n")), (RED, t("rejected_n")), (GREY, t("pending_n")))
    ):
        lx = left + j * 120
        body.append(f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(lx + 18, legend_y, name, cls="legend"))
    return _svg(width, height, body, t("per_day"))


def rate_chart(table: Table, t: Any, label: Any) -> Markup:
    rows = [r for r in table.rows if r.cases][:20]
    width, row_h, left = 660, 26, 150
    height = max(1, len(rows)) * row_h + 10
    body = []
    for i, r in enumerate(rows):
        y = 5 + i * row_h
        body.append(_text(left - 8, y + 16, label(r.key), "end", "axis"))
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{width - left - 80}" height="18" fill="#eeeeee"/>'
        )
        if r.acceptance is not None:
            w = (width - left - 80) * r.acceptance
            body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="18" fill="{BLUE}"/>')
        text = "—" if r.acceptance is None else f"{r.acceptance * 100:.0f}%"
        body.append(
            _text(
                width - 72,
                y + 16,
                f"{text}  ({r.accepted}/{r.accepted + r.rejected_total})",
                cls="value",
            )
        )
    return _svg(width, height, body, t("acceptance"))


def reason_chart(table: Table, t: Any) -> Markup:
    items = [(r, table.total.rejected[r]) for r in REASONS if table.total.rejected[r]]
    width, row_h, left = 660, 26, 150
    height = max(1, len(items)) * row_h + 10
    peak = max([n for _, n in items] + [1])
    body = []
    for i, (reason, n) in enumerate(items):
        y = 5 + i * row_h
        body.append(_text(left - 8, y + 16, t.reason_short(reason), "end", "axis"))
        w = (width - left - 80) * n / peak
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="18" fill="{RED}"/>')
        body.append(_text(left + w + 6, y + 16, n, cls="value"))
    return _svg(width, height, body, t("by_reason"))


def charts(table: Table, period: Period, t: Any) -> dict[str, Markup]:
    def label(key: str) -> str:
        return t.type(key) if period.group == "type" else key

    out = {"rate": rate_chart(table, t, label), "reasons": reason_chart(table, t)}
    if period.group == "day":
        out["per_day"] = per_day_chart(table, t)
    return out
