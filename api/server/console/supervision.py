"""监督评价 in the console (`/console/supervision`): the city's figures per department, grid
cell, type or camera (the API's own `desk_stats`, as `GET /v1/desk/stats` serves them) and
per reviewer (`reviewer_stats`), as a table, server-drawn SVG bars and CSV."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from api.server import desk_stats, reviewer_stats
from api.server.console import stats
from api.server.console.i18n import Translator
from api.server.console.pages import TZ, lang_of, reader, render, router
from api.server.console.stats import _svg, _text

BY = (*(g.value for g in desk_stats.GroupBy), "reviewer")
COUNT_COLOURS = {
    "reported": "#78909c",
    "accepted": "#2e7d32",
    "dispatched": "#1565c0",
    "closed": "#6a1b9a",
    "overdue_now": "#c62828",
}
RATES = {"acceptance_rate": "#2e7d32", "on_time_rate": "#1565c0", "closure_rate": "#6a1b9a"}
DECISION_COLOURS = {
    "accepted": "#2e7d32",
    "rejected": "#c62828",
    "duplicate": "#ef6c00",
    "dispatched": "#1565c0",
    "resolved": "#00838f",
    "closed": "#6a1b9a",
}


def legend(items: list[tuple[str, str]], y: float = 12) -> list[str]:
    """A row of coloured keys at the top of a chart."""
    body, x = [], 10.0
    for name, colour in items:
        body.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 17, y, name, cls="legend"))
        x += 30 + 13 * len(name)
    return body


def bars(
    groups: list[tuple[str, list[tuple[str, float, str, str]]]],
    label: str,
    keys: list[tuple[str, str]],
    percent: bool = False,
) -> Markup:
    """Grouped horizontal bars under a legend: per group, (name, value, colour, text) bars one
    under another; with `percent`, values are fractions drawn against 100%."""
    width, left, bar_h, gap = 660, 170, 14, 10
    peak = 1.0 if percent else max([v for _, bs in groups for _, v, _, _ in bs] + [1])
    body, y = legend(keys), 28
    for key, items in groups:
        body.append(_text(left - 8, y + bar_h * len(items) / 2 + 4, key, "end", "axis"))
        for name, value, colour, shown in items:
            w = (width - left - 90) * (value / peak if peak else 0)
            body.append(
                f'<rect x="{left}" y="{y}" width="{max(w, 1 if value else 0):.1f}" '
                f'height="{bar_h - 2}" fill="{colour}"><title>{escape(key)} {escape(name)}: '
                f"{escape(shown)}</title></rect>"
            )
            if value or percent:  # a count of nothing is left blank; the table has it
                body.append(_text(left + w + 6, y + bar_h - 3, shown, cls="value"))
            y += bar_h
        y += gap
    return _svg(width, max(y, 40), body, label)


def stacked(
    groups: list[tuple[str, list[tuple[str, int, str]]]], label: str, keys: list[tuple[str, str]]
) -> Markup:
    """One horizontal bar per group, stacked by parts under a legend; the total at its end."""
    width, left, row_h, top = 660, 170, 24, 28
    peak = max([sum(v for _, v, _ in parts) for _, parts in groups] + [1])
    body = legend(keys)
    for i, (key, parts) in enumerate(groups):
        y, x = top + i * row_h, float(left)
        body.append(_text(left - 8, y + 15, key, "end", "axis"))
        for name, value, colour in parts:
            if not value:
                continue
            w = (width - left - 60) * value / peak
            body.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="18" fill="{colour}">'
                f"<title>{escape(key)} {escape(name)}: {value}</title></rect>"
            )
            if w > 18:
                body.append(_text(x + w / 2, y + 15, value, "middle", "inbar"))
            x += w
        body.append(_text(x + 6, y + 15, sum(v for _, v, _ in parts), cls="value"))
    return _svg(width, max(top + len(groups) * row_h, 40), body, label)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def group_charts(rows: list[dict[str, Any]], t: Translator, key: Callable[[str], str]) -> dict:
    count_keys = [(t("sv_" + c), colour) for c, colour in COUNT_COLOURS.items()]
    rate_keys = [(t("sv_" + c), colour) for c, colour in RATES.items()]
    counts, rates = [], []
    for r in rows:
        counts.append(
            (key(r["key"]), [(name, r[c], colour, str(r[c]))
                             for (name, colour), c in zip(count_keys, COUNT_COLOURS, strict=True)])
        )  # fmt: skip
        rates.append(
            (key(r["key"]), [(name, r[c] or 0.0, colour, _pct(r[c]))
                             for (name, colour), c in zip(rate_keys, RATES, strict=True)])
        )  # fmt: skip
    return {
        "counts": bars(counts, t("sv_counts"), count_keys),
        "rates": bars(rates, t("sv_rates"), rate_keys, percent=True),
    }


# What became of decisions, as shares: (decision(s), outcome, label, colour).
SHARES = (
    (("accepted",), "closed", "rv_accepted_closed", "#6a1b9a"),
    (("accepted",), "not_verified", "rv_accepted_not_verified", "#ef6c00"),
    (("resolved",), "not_verified", "rv_resolved_not_verified", "#00838f"),
    (("rejected", "duplicate"), "re_reported", "rv_rejected_re_reported", "#c62828"),
)


def reviewer_charts(rows: list[reviewer_stats.ReviewerRow], t: Translator) -> dict:
    decision_keys = [(t("decision_" + d), c) for d, c in DECISION_COLOURS.items()]
    decisions = [
        (r.reviewer, [(name, r.decisions[d], c)
                      for (name, c), d in zip(decision_keys, DECISION_COLOURS, strict=True)])
        for r in rows
    ]  # fmt: skip
    share_keys = [(t(label), colour) for _, _, label, colour in SHARES]
    outcomes = []
    for r in rows:
        items = []
        for made, outcome, label, colour in SHARES:
            n = sum(r.outcomes[d][outcome] for d in made)
            of = sum(r.decisions[d] for d in made)
            if of:  # a share of nothing is left out
                items.append((t(label), n / of, colour, f"{n}/{of}"))
        if items:
            outcomes.append((r.reviewer, items))
    return {
        "decisions": stacked(decisions, t("rv_decisions"), decision_keys),
        "outcomes": bars(outcomes, t("rv_outcomes"), share_keys, percent=True),
    }


def _period(
    params: Mapping[str, str], now: datetime
) -> tuple[stats.Period, str, datetime, datetime]:
    period = stats.period_of(params, TZ, now)
    by = params.get("by", "department")
    start, end = period.bounds(TZ)
    return period, by if by in BY else "department", start, end


def _query(period: stats.Period, by: str) -> str:
    return urlencode(
        {"by": by, "since": period.since.isoformat(), "until": period.until.isoformat()}
    )


@router.get("/supervision", response_class=HTMLResponse)
def supervision_page(request: Request) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    ctx = request.app.state.ctx
    now = ctx.clock()
    period, by, start, end = _period(request.query_params, now)
    t = Translator(lang_of(request))
    with ctx.db.read() as session:
        if by == "reviewer":
            reviewers = reviewer_stats.reviewer_statistics(session, start, end)
            rows: list[dict[str, Any]] = []
        else:
            reviewers = []
            rows = desk_stats.statistics(session, desk_stats.GroupBy(by), now, start, end)

    def key(value: str) -> str:
        if value == desk_stats.NONE:
            return t("sv_none")
        return t.type(value) if by == "type" else value

    charts = reviewer_charts(reviewers, t) if by == "reviewer" else group_charts(rows, t, key)
    totals = {c: sum(r[c] for r in rows) for c in desk_stats.COUNTS}
    return render(
        request,
        "supervision.html",
        user,
        page="supervision",
        period=period,
        by=by,
        groups=BY,
        rows=rows,
        totals=totals,
        reviewers=reviewers,
        decisions=[d.value for d in reviewer_stats.DECISIONS],
        outcomes=reviewer_stats.OUTCOMES,
        applies=reviewer_stats.applies,
        steps=desk_stats.STEPS,
        counts=desk_stats.COUNTS,
        charts=charts,
        key=key,
        pct=_pct,
        duration=stats.duration,
        at=now,
        query=_query(period, by),
    )


@router.get("/supervision.csv")
def supervision_csv(request: Request) -> Response:
    reader(request)
    ctx = request.app.state.ctx
    now = ctx.clock()
    period, by, start, end = _period(request.query_params, now)
    with ctx.db.read() as session:
        if by == "reviewer":
            body = reviewer_stats.to_csv(reviewer_stats.reviewer_statistics(session, start, end))
        else:
            group = desk_stats.GroupBy(by)
            body = desk_stats.to_csv(group, desk_stats.statistics(session, group, now, start, end))
    name = f"streetwatch-supervision-{by}-{period.since}-{period.until}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
