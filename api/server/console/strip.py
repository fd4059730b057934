"""The case page's dwell strips: each report's thumbnails over its dwell (kind `dwell`), in
time order, one strip per report in the order the case received them."""

from __future__ import annotations

from dataclasses import dataclass

from api.server.schemas import CaseOut, EvidenceOut
from api.server.tables import Report


@dataclass(frozen=True)
class Strip:
    report_id: str | None  # None: sent by case id to several reports at once
    camera_id: str | None
    shots: list[EvidenceOut]


def strips_of(case: CaseOut, reports: list[Report]) -> list[Strip]:
    order = {r.id: i for i, r in enumerate(reports)}
    by_report: dict[str | None, list[EvidenceOut]] = {}
    for e in case.evidence:
        if e.kind == "dwell":
            by_report.setdefault(e.report_id, []).append(e)
    return [
        Strip(rid, shots[0].camera_id, sorted(shots, key=lambda e: e.captured_at))
        for rid, shots in sorted(by_report.items(), key=lambda kv: order.get(kv[0], len(order)))
    ]
