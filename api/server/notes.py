"""Notes the server writes on a change itself (system notes).

Each is stored twice: readable, in English, in the change's `note` (what the API has always
answered), and as a code with its values in the change's data (`note_code`, `note_args`),
so the console says it in the reader's language (api/server/console/i18n.py, NOTES). A
person's own note has no code and is shown as written; where a person's words go with a
system note (a merge's), they are kept as written in `note_args["said"]`.
"""

from __future__ import annotations

from typing import Any

TEMPLATES = {
    "overdue": "{department} passed its deadline {deadline}",
    "verified": "the camera saw the object gone at {cleared_at}",
    "not_verified": "not verified: the camera still saw the object at {last_seen}, "
    "after it was resolved at {resolved_at}",
    "closed_verified": "closed: the camera verified the object gone",
    "absorbed_case": "absorbed case {case}, marked its duplicate",
    "absorbed_report": "absorbed report {report} ({source})",
    "absorbed_report_superseding": "absorbed report {report} ({source}); "
    "it supersedes {superseded}",
}
# Values that are times (ISO 8601): the console shows them in the city's time zone.
TIMES = frozenset({"deadline", "cleared_at", "last_seen", "resolved_at"})


def system_note(code: str, said: str | None = None, **args: str) -> dict[str, Any]:
    """Keyword arguments for `changes.record`: the note in English, its code and values."""
    text = TEMPLATES[code].format(**args)
    if said:
        text, args = f"{text}: {said}", {**args, "said": said}
    return {"note": text, "note_code": code, "note_args": args}
