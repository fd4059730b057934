"""What `make demo` prints about the cases offline scoring found."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from streams.demo import show
from tests.api.helpers import T0, report


def test_an_incident_never_cleared_is_said_to_be_not_cleared(tmp_path: Path, capsys) -> None:
    """Issue 28: it read "cleared (still there at the end)" for one never cleared."""
    there, _ = report([], n_evidence=0, report_id="bus")
    gone, _ = report([], n_evidence=0, report_id="van", cleared_at=T0 + timedelta(minutes=5))
    cases = tmp_path / "cases.jsonl"
    cases.write_text(there.model_dump_json() + "\n" + gone.model_dump_json() + "\n")
    show(cases)
    first, second = capsys.readouterr().out.split("\n- ")[1:]
    assert first.rstrip().endswith("not cleared: still there at the end")
    assert "cleared 2025-06-01T08:05:00Z" in second and "still there" not in second
