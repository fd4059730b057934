"""A camera's saved sites brought up to the reports known elsewhere, which may be newer than
the state: a worker saves a camera's sites right after it queues an incident event in its
outbox, so one killed in between leaves a state a step behind its outbox and the API.

Two sources know better: the camera's own outbox, when the same worker restarts (`adopt`
what it queued or delivered), and the intake API, when a fleet worker takes a camera over
from one that died (`reconcile`: also what the dead worker never delivered, and the
clearings it lost).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np

from api.contract import CaseReport
from api.contract.fleet import ReportedIncident
from streams.camera.site_store import CameraState

log = logging.getLogger(__name__)

SAME_MOMENT_S = 0.002  # a site's first sighting restored on another worker, to the ms


def adopt(camera_id: str, state: CameraState, held: dict[str, CaseReport], source: str) -> set[str]:
    """In place: a site still in its dwell whose incident `held` has open continues as that
    incident, reported (its clearing will be sent); a site whose incident `held` has cleared
    is dropped. Returns the ids of `held` that a site of the state matched. `source` names
    where `held` came from, for the log."""
    pipeline = state.pipeline
    seen: set[str] = set()
    for key, sites in pipeline.sites.items():
        zone_id, _, type_ = key.partition("|")
        kept: list[tuple[dict, np.ndarray | None]] = []
        for n, site in enumerate(sites):
            incident = site.get("incident")
            report = held.get(incident["id"]) if incident else None
            if incident is None:
                report = next(
                    (
                        r
                        for r in held.values()
                        if r.zone_id == zone_id
                        and r.type == type_
                        and abs(r.first_seen.timestamp() - site["first_seen"]) <= SAME_MOMENT_S
                    ),
                    None,
                )
            if report is not None:
                seen.add(report.id)
                if report.cleared_at is not None:  # cleared already: the site is over
                    state.reports.pop(report.id, None)
                    state.evidence.pop(report.id, None)
                    continue
                if incident is None:
                    log.info(
                        "camera %s: %s continues as reported (%s holds it)",
                        camera_id,
                        report.id,
                        source,
                    )
                    site["incident"] = {
                        "id": report.id,
                        "class_name": report.class_name,
                        "confidence": report.confidence,
                        "confirmed_at": report.confirmed_at.timestamp(),
                    }
                    state.reports[report.id] = report
            kept.append((site, pipeline.shots.get(f"{key}|{n}")))
        for n in range(len(sites)):  # shots go by the site's position: re-keyed
            pipeline.shots.pop(f"{key}|{n}", None)
        sites[:] = [site for site, _ in kept]
        pipeline.shots.update(
            {f"{key}|{n}": shot for n, (_, shot) in enumerate(kept) if shot is not None}
        )
    return seen


def reconcile(
    camera_id: str, state: CameraState, reported: list[ReportedIncident]
) -> tuple[list[CaseReport], list[CaseReport]]:
    """Brings a camera's handed-over state up to what the API holds of its reports (`adopt`):
    the previous worker may have died between its report (or clearing) reaching the API and
    handing that over, or between handing a confirmation over and delivering it.

    Returns (to post, to clear): reported incidents of the state the API does not hold (their
    reports never left the dead worker), and incidents the API holds open, confirmed before
    the state was taken, whose site the state no longer has (the dead worker cleared them;
    its clearing is lost) with `cleared_at` the state's time."""
    held = {r.report.id: r.report for r in reported if r.report.camera_id == camera_id}
    seen = adopt(camera_id, state, held, "the API")
    to_post = [r for i, r in state.reports.items() if i not in held]
    gone_by = datetime.fromtimestamp(state.saved_at, UTC)  # the state has no site then
    to_clear = [
        r.model_copy(update={"cleared_at": max(r.last_seen, gone_by)})
        for i, r in held.items()
        if i not in seen and r.cleared_at is None and r.confirmed_at.timestamp() < state.saved_at
    ]
    return to_post, to_clear
