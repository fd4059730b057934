"""The case lifecycle (数字城管 workflow): which status changes are allowed.

    reported   -> accepted | rejected | duplicate     review (立案 / 注销 / merge)
    accepted   -> dispatched | rejected | duplicate   routed to a team (派遣)
    dispatched -> resolved                            the team reports it handled (处置反馈)
    resolved   -> closed | dispatched                 verified (核查结案), or verification failed
    closed, rejected, duplicate                       final

Anything else is refused with 409 and changes nothing.
"""

from __future__ import annotations

from api.contract import CaseStatus

S = CaseStatus

TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.reported: frozenset({S.accepted, S.rejected, S.duplicate}),
    S.accepted: frozenset({S.dispatched, S.rejected, S.duplicate}),
    S.dispatched: frozenset({S.resolved}),
    S.resolved: frozenset({S.closed, S.dispatched}),
    S.closed: frozenset(),
    S.rejected: frozenset(),
    S.duplicate: frozenset(),
}

# A new report of the same incident merges only into a case still being worked on; after
# resolution a recurrence is a new case, which is the verifier's evidence.
MERGEABLE: frozenset[CaseStatus] = frozenset({S.reported, S.accepted, S.dispatched})

# Open311 knows only open and closed: a case is closed once it left the workflow.
OPEN311_CLOSED: frozenset[CaseStatus] = frozenset({S.closed, S.rejected, S.duplicate})


def allowed(current: CaseStatus) -> list[CaseStatus]:
    return sorted(TRANSITIONS[current])


def table_markdown() -> str:
    """The table as Markdown, for the OpenAPI description."""
    rows = [f"| `{s}` | {', '.join(f'`{t}`' for t in allowed(s)) or '(final)'} |" for s in S]
    return "| from | allowed to |\n|---|---|\n" + "\n".join(rows)
