"""Taking in reports and observations: merge into an open case or open a new one."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.contract import (
    CaseReceipt,
    CaseReport,
    CaseStatus,
    IncidentType,
    Location,
    Position,
)
from api.contract.codes import CodeTable
from api.server.auth import Principal
from api.server.changes import record
from api.server.clock import now_in
from api.server.evidence import Pair, Upload, attach, thin_strips
from api.server.grid import locate
from api.server.merge import Sighting, find_match
from api.server.notes import system_note
from api.server.problems import Problem
from api.server.settings import Settings
from api.server.storage import EvidenceStore
from api.server.tables import Case, Report


def fingerprint(report: CaseReport, uploads: Sequence[Upload]) -> str:
    """What an Idempotency-Key is bound to: the report's content and the evidence bytes."""
    canonical = json.dumps(
        {
            "report": report.model_dump(mode="json"),
            "evidence": sorted((u.filename, u.sha256) for u in uploads),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# A report's first_seen as another worker restores it may differ in its last microseconds
# (the incident id is taken to the millisecond for the same reason).
SAME_MOMENT = timedelta(milliseconds=1)


def same_incident(known: Report, report: CaseReport) -> bool:
    """Whether `report` is a state of the incident `known` reported (another worker that took
    its camera over, or the first sender's late redelivery): the same id, type, camera, zone
    and first sighting. Its merge is monotonic (`observe`): a newer state updates the case,
    an older one changes nothing."""
    payload = known.payload
    return (
        known.id == report.id
        and known.source == "worker"
        and payload.get("type") == report.type
        and known.camera_id == report.camera_id
        and known.zone_id == report.zone_id
        and abs(known.first_seen - report.first_seen) <= SAME_MOMENT
    )


def new_case_id() -> str:
    return f"cs_{secrets.token_hex(8)}"


def check_event_code(codes: CodeTable, type_: str, event_code: str) -> None:
    code = codes.get(event_code)
    if code is None or code.type != type_:
        valid = [c.code for c in codes.codes if c.type == type_]
        raise Problem(
            422,
            f"Event code '{event_code}' is not a {type_} code of {codes.standard}: use {valid}",
            kind="unknown-event-code",
        )


def grid_of(session: Session, position: Position | None, configured: str | None) -> str | None:
    """The grid cell (单元网格) of a new case: where its object stands when a calibrated
    camera placed it inside the city's grid, else the camera's configured cell."""
    if position is not None and (cell := locate(session, position.lat, position.lon)):
        return cell
    return configured


def refresh(case: Case) -> None:
    """Recompute what a case derives from its reports."""
    reports = case.reports
    case.first_seen = min(r.first_seen for r in reports)
    case.last_seen = max(r.last_seen for r in reports)
    # A merged case is cleared only when every camera that saw it has seen it cleared; a
    # report superseded by a newer one of its camera and zone is finished by that one.
    in_force = [r for r in reports if r.superseded_by is None] or list(reports)
    cleared = [r.cleared_at for r in in_force]
    case.cleared_at = None if None in cleared else max(c for c in cleared if c is not None)
    # The plate: the most confident of the reports in force (a case holds one vehicle).
    plated = [r for r in in_force if r.plate is not None and r.plate_confidence is not None]
    best = max(plated, key=lambda r: r.plate_confidence or 0.0, default=None)
    case.plate = best.plate if best is not None else None
    case.plate_confidence = best.plate_confidence if best is not None else None
    if case.position_lat is None:  # the object's place, from the first report that has one
        placed = next((r for r in reports if r.position_lat is not None), None)
        if placed is not None:
            case.position_lat, case.position_lon = placed.position_lat, placed.position_lon


def supersede(case: Case, new: Report) -> list[Report]:
    """A newer report of the same camera and zone takes over the case's older open ones.

    One camera reports one site once at a time; an older open report of the same camera and
    zone in the case the newer one joined (its box overlaps, or it would not have joined) is
    one its sender lost track of, say a worker restarted without its state. Nobody will clear
    it, so it no longer holds the case open: the newer report's clearing clears the case."""
    if new.camera_id is None or new.source != "worker":
        return []
    older = [
        r
        for r in case.reports
        if r is not new
        and r.camera_id == new.camera_id
        and r.zone_id == new.zone_id
        and r.cleared_at is None
        and r.superseded_by is None
        and r.first_seen <= new.first_seen
    ]
    for r in older:
        r.superseded_by = new.id
    return older


def receipt(case: Case, report: Report) -> CaseReceipt:
    return CaseReceipt(
        case_id=case.id,
        report_id=report.id,
        merged=case.reports[0] is not report,  # the first report received opened the case
        status=CaseStatus(case.status),
        report_count=len(case.reports),
    )


@dataclass(frozen=True)
class Incoming:
    """A report on its way in, from a worker or an Open311 client."""

    id: str
    source: str  # "worker" | "open311"
    type: str
    event_code: str
    first_seen: datetime
    confirmed_at: datetime
    last_seen: datetime
    payload: dict[str, Any]  # as received, kept for audit
    camera_id: str | None = None
    zone_id: str | None = None
    bbox: list[float] | None = None
    location: Location = field(default_factory=Location)
    position: Position | None = None  # the object's own place, when known
    cleared_at: datetime | None = None
    class_name: str | None = None
    confidence: float | None = None
    description: str | None = None
    plate: str | None = None
    plate_confidence: float | None = None

    @classmethod
    def from_report(cls, r: CaseReport) -> Incoming:
        return cls(
            id=r.id,
            source="worker",
            type=r.type,
            event_code=r.event_code,
            first_seen=r.first_seen,
            confirmed_at=r.confirmed_at,
            last_seen=r.last_seen,
            payload=r.model_dump(mode="json"),
            camera_id=r.camera_id,
            zone_id=r.zone_id,
            bbox=r.bbox,
            location=r.location,
            position=r.position,
            cleared_at=r.cleared_at,
            class_name=r.class_name,
            confidence=r.confidence,
            plate=r.plate,
            plate_confidence=r.plate_confidence,
        )


def ingest(
    session: Session,
    settings: Settings,
    store: EvidenceStore,
    written: list[str],
    new: Incoming,
    pairs: Sequence[Pair],
    principal: Principal,
) -> tuple[int, CaseReceipt]:
    """Store a report; returns (201, receipt) for a new case, (200, receipt) otherwise."""
    check_event_code(settings.codes, new.type, new.event_code)
    known = session.get(Report, (principal.namespace, new.id))
    if known is not None:  # the same incident again: only what it adds is news
        observe(
            session,
            store,
            written,
            known.case,
            [known],
            principal,
            last_seen=new.last_seen,
            cleared_at=new.cleared_at,
            pairs=pairs,
            plate=(new.plate, new.plate_confidence) if new.plate is not None else None,
        )
        return 200, receipt(known.case, known)

    now = now_in(session)
    loc, pos = new.location, new.position
    sighting = Sighting(
        type=new.type,
        camera_id=new.camera_id,
        bbox=new.bbox,
        position=(pos.lat, pos.lon) if pos else None,
        first_seen=new.first_seen,
        last_seen=new.last_seen,
        camera_location=(loc.lat, loc.lon) if loc.lat is not None and loc.lon is not None else None,
        plate=new.plate,
        plate_confidence=new.plate_confidence,
    )
    case = find_match(session, sighting, settings)
    if case is None:
        case = Case(
            id=new_case_id(),
            type=new.type,
            event_code=new.event_code,
            status=CaseStatus.reported,
            origin_report_id=new.id,
            camera_id=new.camera_id,
            zone_id=new.zone_id,
            lat=loc.lat,
            lon=loc.lon,
            address=loc.address,
            grid=grid_of(session, pos, loc.grid),
            position_lat=pos.lat if pos else None,
            position_lon=pos.lon if pos else None,
            first_seen=new.first_seen,
            confirmed_at=new.confirmed_at,
            last_seen=new.last_seen,
            class_name=new.class_name,
            confidence=new.confidence,
            bbox=new.bbox,
            description=new.description,
            created_at=now,
            updated_at=now,
        )
        session.add(case)
        kind, code = "created", 201
    else:
        if new.confidence is not None:
            case.confidence = max(case.confidence or 0.0, new.confidence)
        case.confirmed_at = min(case.confirmed_at, new.confirmed_at)
        kind, code = "merged", 200
    report = Report(
        namespace=principal.namespace,
        id=new.id,
        source=new.source,
        camera_id=new.camera_id,
        zone_id=new.zone_id,
        bbox=new.bbox,
        lat=loc.lat,
        lon=loc.lon,
        position_lat=pos.lat if pos else None,
        position_lon=pos.lon if pos else None,
        first_seen=new.first_seen,
        last_seen=new.last_seen,
        cleared_at=new.cleared_at,
        plate=new.plate,
        plate_confidence=new.plate_confidence,
        received_at=now,
        payload=new.payload,
    )
    case.reports.append(report)
    superseded = supersede(case, report)
    session.flush()
    evidence = attach(
        session, store, written, case, pairs, report_id=new.id, camera_id=new.camera_id
    )
    evidence, thinned = _thin(session, store, case, evidence)
    refresh(case)
    extra: dict[str, Any] = {"thinned": thinned} if thinned else {}
    if superseded:
        extra["superseded"] = [r.id for r in superseded]
    if kind != "created":
        args = {"report": new.id, "source": new.camera_id or new.source}
        if superseded:
            args["superseded"] = ", ".join(r.id for r in superseded)
        extra |= system_note(
            "absorbed_report_superseding" if superseded else "absorbed_report", **args
        )
    record(
        session,
        case,
        kind,
        principal=principal,
        from_status=case.status,
        report_id=new.id,
        camera_id=new.camera_id,
        evidence=evidence,
        **extra,
    )
    return code, receipt(case, report)


def observe(
    session: Session,
    store: EvidenceStore,
    written: list[str],
    case: Case,
    reports: Sequence[Report],
    principal: Principal,
    *,
    last_seen: datetime | None,
    cleared_at: datetime | None,
    pairs: Sequence[Pair],
    plate: tuple[str, float] | None = None,
) -> bool:
    """Apply a later observation to some of a case's reports; True if anything changed.
    `plate`: the worker's vote now (text, confidence), which replaces the report's."""
    if plate is not None and case.type != IncidentType.illegal_parking:
        raise Problem(
            422, f"only illegal_parking cases carry a plate, not {case.type}", kind="invalid-plate"
        )
    changed = False
    for r in reports:
        if plate is not None and (r.plate, r.plate_confidence) != plate:
            r.plate, r.plate_confidence = plate
            changed = True
        if last_seen is not None and last_seen > r.last_seen:
            r.last_seen = last_seen
            changed = True
            newer = next((n for n in case.reports if n.id == r.superseded_by), None)
            if newer is not None and last_seen > newer.first_seen:
                # Seen after the newer one began: its sender is alive and still watching it
                # (a queued observation from before a restart is older than that).
                r.superseded_by = None
        if cleared_at is not None and r.cleared_at is None:
            if cleared_at < r.first_seen:
                raise Problem(422, "cleared_at is before first_seen", kind="invalid-observation")
            r.cleared_at = cleared_at
            changed = True
    one = reports[0] if len(reports) == 1 else None
    evidence = attach(
        session,
        store,
        written,
        case,
        pairs,
        report_id=one.id if one else None,
        camera_id=one.camera_id if one else None,
    )
    evidence, thinned = _thin(session, store, case, evidence)
    if not (changed or evidence or thinned):
        return False
    refresh(case)
    record(
        session,
        case,
        "observation",
        principal=principal,
        from_status=case.status,
        report_ids=[r.id for r in reports],
        evidence=evidence,
        last_seen=last_seen.isoformat() if last_seen else None,
        cleared_at=cleared_at.isoformat() if cleared_at else None,
        **({"thinned": thinned} if thinned else {}),
    )
    return True


def _thin(
    session: Session, store: EvidenceStore, case: Case, added: list[str]
) -> tuple[list[str], list[str]]:
    """Bounds the case's dwell strips (`thin_strips`): (what stays of `added`, what went)."""
    thinned = thin_strips(session, store, case)
    return [sha for sha in added if sha not in thinned], thinned


def resolve(session: Session, id_: str) -> tuple[Case, list[Report]]:
    """A case by its id, or by the id of a report it absorbed (for readers: any key's)."""
    case = session.scalar(select(Case).where(Case.id == id_))
    if case is not None:
        return case, list(case.reports)
    reports = list(session.scalars(select(Report).where(Report.id == id_)))
    if not reports:
        raise Problem(404, f"No case or report '{id_}'", kind="not-found")
    cases = {r.case_seq: r.case for r in reports}
    if len(cases) > 1:
        raise Problem(
            409,
            f"Report id '{id_}' was sent by several keys; use a case id",
            kind="ambiguous-report-id",
            cases=sorted(c.id for c in cases.values()),
        )
    return reports[0].case, reports


def resolve_own(session: Session, id_: str, principal: Principal) -> tuple[Case, list[Report]]:
    """For a worker: a case or report of its own key's namespace (and cameras); by case id,
    the reports of that case it sent. Anything else is 404: another key's case or report
    is not revealed, let alone updated."""

    def own(r: Report) -> bool:
        return r.namespace == principal.namespace and principal.may_report_for(r.camera_id)

    report = session.get(Report, (principal.namespace, id_))
    if report is not None and own(report):
        return report.case, [report]
    case = session.scalar(select(Case).where(Case.id == id_))
    # A case marked a duplicate gave its reports to the case it duplicates: follow them.
    while case is not None and not case.reports and case.duplicate_of is not None:
        case = session.scalar(select(Case).where(Case.id == case.duplicate_of))
    mine = [r for r in case.reports if own(r)] if case is not None else []
    if case is None or not mine:
        raise Problem(404, f"No case or report '{id_}' of this key", kind="not-found")
    return case, mine
