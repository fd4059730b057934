"""监督评价 per reviewer: each person's decisions on cases and what later became of them.

A decision is a status change made with a key (the system and the camera have none):
accepted, rejected, duplicate, dispatched, resolved or closed, made in [since, until) when
given, under the person the change's actor names (`auth.person`: a key's name without
its prefix, so one person is one row whether they acted in the console or through the
API). What became of it, read off the same histories:

    closed        the case is closed now                (for accepted, dispatched, resolved)
    not_verified  after the decision, the camera sent the case back not verified
    reversed      an accepted case is now rejected or a duplicate
    re_reported   after a rejection (rejected, duplicate), a new case of the same type came
                  from the same camera and zone: the camera saw it again
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.contract import CaseStatus
from api.server.auth import person
from api.server.tables import Case, Change

S = CaseStatus
DECISIONS = (S.accepted, S.rejected, S.duplicate, S.dispatched, S.resolved, S.closed)
OUTCOMES = ("closed", "not_verified", "reversed", "re_reported")
REJECTIONS = (S.rejected, S.duplicate)


@dataclass
class ReviewerRow:
    reviewer: str
    decisions: dict[str, int] = field(default_factory=lambda: {d.value: 0 for d in DECISIONS})
    # Per decision, its outcomes.
    outcomes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {d.value: dict.fromkeys(OUTCOMES, 0) for d in DECISIONS}
    )

    @property
    def total(self) -> int:
        return sum(self.decisions.values())

    def as_dict(self) -> dict[str, Any]:
        return {"reviewer": self.reviewer, "total": self.total, "decisions": self.decisions,
                "outcomes": self.outcomes}  # fmt: skip


def _site(case: Case) -> tuple[str, str | None, str | None]:
    return case.type, case.camera_id, case.zone_id


def reviewer_statistics(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> list[ReviewerRow]:
    """One row per reviewer, the busiest first."""
    when = []
    if since is not None:
        when.append(Change.at >= since)
    if until is not None:
        when.append(Change.at < until)
    decisions = list(
        session.execute(
            select(Change.seq, Change.case_seq, Change.actor, Change.to_status, Change.at)
            .where(
                Change.kind == "transition",
                Change.api_key_id.is_not(None),
                Change.to_status.in_([d.value for d in DECISIONS]),
                *when,
            )
            .order_by(Change.seq)
        )
    )
    seqs = {d.case_seq for d in decisions}
    cases = (
        {c.seq: c for c in session.scalars(select(Case).where(Case.seq.in_(seqs)))} if seqs else {}
    )
    # When the camera sent each case back, not verified (verification.after_sighting).
    sent_back: dict[int, list[int]] = defaultdict(list)
    if seqs:
        for seq, case_seq, data in session.execute(
            select(Change.seq, Change.case_seq, Change.data).where(
                Change.kind == "transition", Change.case_seq.in_(seqs)
            )
        ):
            if (data or {}).get("verification") == "not_verified":
                sent_back[case_seq].append(seq)
    # Cases opened per site, for what came back after a rejection.
    rejected_sites = {_site(cases[d.case_seq]) for d in decisions if d.to_status in REJECTIONS}
    opened: dict[tuple[str, str | None, str | None], list[datetime]] = defaultdict(list)
    if rejected_sites:
        cameras = {s[1] for s in rejected_sites if s[1] is not None}
        for type_, camera, zone, created in session.execute(
            select(Case.type, Case.camera_id, Case.zone_id, Case.created_at).where(
                Case.camera_id.in_(cameras)
            )
        ):
            opened[(type_, camera, zone)].append(created)
    rows: dict[str, ReviewerRow] = {}
    for seq, case_seq, actor, to_status, at in decisions:
        case = cases[case_seq]
        who = person(actor)
        row = rows.setdefault(who, ReviewerRow(who))
        row.decisions[to_status] += 1
        out = row.outcomes[to_status]
        if to_status in REJECTIONS:
            if case.camera_id is not None and any(c > at for c in opened[_site(case)]):
                out["re_reported"] += 1
            continue
        if case.status == S.closed:
            out["closed"] += 1
        if any(back > seq for back in sent_back[case_seq]):
            out["not_verified"] += 1
        if to_status == S.accepted and case.status in REJECTIONS:
            out["reversed"] += 1
    return sorted(rows.values(), key=lambda r: (-r.total, r.reviewer))


def to_csv(rows: list[ReviewerRow]) -> str:
    """One line per reviewer: decisions, then `<decision>_<outcome>` for each that applies."""
    columns = [(d.value, o) for d in DECISIONS for o in OUTCOMES if applies(d.value, o)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["reviewer", "total", *(d.value for d in DECISIONS),
                     *(f"{d}_{o}" for d, o in columns)])  # fmt: skip
    for r in rows:
        writer.writerow([r.reviewer, r.total, *(r.decisions[d.value] for d in DECISIONS),
                         *(r.outcomes[d][o] for d, o in columns)])  # fmt: skip
    return out.getvalue()


def applies(decision: str, outcome: str) -> bool:
    """Which outcomes mean something for which decision (closing is final: none)."""
    if decision == S.closed:
        return False
    if decision in REJECTIONS:
        return outcome == "re_reported"
    if outcome == "reversed":
        return decision == S.accepted
    return outcome != "re_reported"
