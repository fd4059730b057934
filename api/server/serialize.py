"""Turning stored records into API bodies."""

from __future__ import annotations

from datetime import datetime

from api.contract import CaseStatus, Location, Position
from api.server.schemas import EVENT_TYPES, CaseOut, ChangeOut, EvidenceOut, RenditionOut
from api.server.tables import Case, Change


def case_out(case: Case, now: datetime) -> CaseOut:
    """`now` (the server's clock) decides `overdue`."""
    sources = list(dict.fromkeys(r.camera_id or r.source for r in case.reports))
    return CaseOut(
        id=case.id,
        type=case.type,
        event_code=case.event_code,
        status=case.status,
        camera_id=case.camera_id,
        zone_id=case.zone_id,
        location=Location(lat=case.lat, lon=case.lon, address=case.address, grid=case.grid),
        position=(
            Position(lat=case.position_lat, lon=case.position_lon)
            if case.position_lat is not None and case.position_lon is not None
            else None
        ),
        first_seen=case.first_seen,
        confirmed_at=case.confirmed_at,
        last_seen=case.last_seen,
        cleared_at=case.cleared_at,
        class_name=case.class_name,
        confidence=case.confidence,
        bbox=case.bbox,
        reviewed_bbox=case.reviewed_bbox,
        description=case.description,
        plate=case.plate,
        plate_confidence=case.plate_confidence,
        evidence=[
            EvidenceOut(
                sha256=e.sha256,
                kind=e.kind,
                captured_at=e.captured_at,
                camera_id=e.camera_id,
                report_id=e.report_id,
                url=f"/v1/evidence/{e.sha256}",
                width=e.image.width,
                height=e.image.height,
                boxes=e.boxes or [],
                annotated_url=f"/v1/cases/{case.id}/evidence/{e.sha256}/annotated",
                deidentified=(
                    RenditionOut(
                        sha256=e.rendition_sha256, url=f"/v1/evidence/{e.rendition_sha256}"
                    )
                    if e.rendition_sha256
                    else None
                ),
                removed_at=e.image.removed_at,
            )
            for e in case.evidence
        ],
        report_count=len(case.reports),
        report_ids=[r.id for r in case.reports],
        sources=sources,
        duplicate_of=case.duplicate_of,
        department=case.department,
        urgency=case.urgency,
        dispatched_at=case.dispatched_at,
        deadline=case.deadline,
        # Announced overdue (api/server/desk.py), or past the deadline on the server's clock.
        overdue=case.status == CaseStatus.dispatched
        and case.deadline is not None
        and (case.overdue_at is not None or case.deadline <= now),
        resolved_at=case.resolved_at,
        verification=case.verification,
        verified_at=case.verified_at,
        created_at=case.created_at,
        updated_at=case.updated_at,
    )


def change_out(change: Change) -> ChangeOut:
    return ChangeOut(
        seq=change.seq,
        kind=change.kind,  # type: ignore[arg-type]
        event_type=EVENT_TYPES[change.kind],
        case_id=change.case_id,
        at=change.at,
        actor=change.actor,
        api_key_id=change.api_key_id,
        from_status=change.from_status,
        to_status=change.to_status,
        note=change.note,
        data=change.data,
    )
