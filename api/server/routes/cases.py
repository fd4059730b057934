"""`/v1/cases`: intake from workers, reading and lifecycle for the dispatch platform."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Path, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.contract import (
    CaseReceipt,
    CaseReport,
    CaseStatus,
    IncidentType,
    Observation,
    ObservationReceipt,
)
from api.server import problems
from api.server.auth import Dispatch, Ingest
from api.server.boxes import BoxIn, annotated_response, set_reviewed_box
from api.server.context import Ctx
from api.server.evidence import Upload, camera_frame, frame_of, match, read_uploads, staged
from api.server.forms import parse_json_field
from api.server.intake import (
    Incoming,
    fingerprint,
    ingest,
    observe,
    resolve,
    resolve_own,
    same_incident,
)
from api.server.lifecycle import table_markdown
from api.server.middleware import AuthFirstRoute
from api.server.problems import Problem
from api.server.renditions import EvidenceView
from api.server.schemas import CaseDetail, CaseOut, CasePage, TransitionIn
from api.server.serialize import case_out, change_out
from api.server.tables import Case, Change, IdempotencyRecord, Report
from api.server.transitions import transition
from api.server.validation import check_observation, check_report, query_time, sequence
from api.server.verification import after_sighting

router = APIRouter(route_class=AuthFirstRoute, prefix="/v1/cases", tags=["cases"])

CaseId = Annotated[str, Path(min_length=1, max_length=128, description="A case id, or a report id")]

CaseField = Annotated[
    str,
    Form(
        description="The report as JSON: the `CaseReport` schema, as `streetwatch score` writes it",
        json_schema_extra={"contentMediaType": "application/json"},
    ),
]
EvidenceFiles = Annotated[
    list[UploadFile],
    File(
        description="The report's evidence images (JPEG or PNG), each named as the basename "
        "of its `EvidenceRef.path`; each must match the sha256 the report gives"
    ),
]
# Declared optional so that a missing key is our 400, not a generic 422; documented as
# required through IDEMPOTENCY_KEY_DOC.
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=255, include_in_schema=False)
]
IDEMPOTENCY_KEY_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Derived from the incident by the worker. The same key with the same "
    "payload replays the first answer; with another state of the same report (its id, type, "
    "camera, zone and first_seen) it updates the case as a PATCH would (200); with any other "
    "payload it is refused with 422; without it the request is refused with 400",
}


def _uploads(ctx: Ctx, files: list[UploadFile]) -> list[Upload]:
    s = ctx.settings
    return read_uploads(
        [(f.filename, f.file) for f in files],
        s.max_evidence_files,
        s.max_evidence_bytes,
        s.max_image_pixels,
    )


@router.post(
    "",
    status_code=201,
    summary="Report an incident",
    response_model=CaseReceipt,
    responses={
        200: {"model": CaseReceipt, "description": "An open case absorbed the report"},
        201: {"description": "A new case was opened"},
        **problems.responses(400, 401, 403, 413, 422),
    },
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_DOC]},
)
def post_case(
    ctx: Ctx,
    principal: Ingest,
    case: CaseField,
    idempotency_key: IdempotencyKey = None,
    evidence: EvidenceFiles = [],  # noqa: B006 - FastAPI copies defaults per request
) -> JSONResponse:
    """Take one worker report with its evidence, atomically: both are stored or neither.

    A report of the same type as an open case, from the same camera with an overlapping box
    or within the merge distance on the map, and within the merge time window, is absorbed
    by that case (200, `merged: true`); otherwise a new case is opened (201). A report id
    already seen updates its case as an observation would (200), under a new key or under
    its first key from another state of the incident (a fleet worker that took its camera
    over): `last_seen` only moves forward and `cleared_at` is set once, so a late, older
    state changes nothing.
    """
    if not idempotency_key:
        raise Problem(400, "The Idempotency-Key header is required", kind="idempotency-key-missing")
    report = parse_json_field(CaseReport, case, "case")
    principal.check_camera(report.camera_id)
    uploads = _uploads(ctx, evidence)
    # The site box must lie on the camera's frame: the evidence's, else the stored one's.
    frame = frame_of(uploads, report.evidence)
    if frame is None:
        with ctx.db.read() as session:  # before the write lock: a read holds up no one
            frame = camera_frame(session, report.camera_id)
    check_report(report, ctx.clock(), ctx.settings.max_clock_skew_s, frame)
    pairs = match(report.evidence, uploads)
    request_print = fingerprint(report, uploads)
    # Files written by a failing request are removed before its transaction ends, while the
    # write lock is still held: no other request can have linked them in the meantime.
    with ctx.db.write() as session, staged(ctx.store) as written:
        previous = session.get(IdempotencyRecord, (principal.namespace, idempotency_key))
        ttl = timedelta(seconds=ctx.settings.idempotency_ttl_s)
        if previous is not None and previous.created_at < ctx.clock() - ttl:
            # Expired: a new request. A report sent again still finds its report by id.
            session.delete(previous)
            session.flush()
            previous = None
        if previous is not None and previous.fingerprint == request_print:
            ctx.metrics.reports.labels("replayed").inc()
            return JSONResponse(
                previous.body, previous.status_code, headers={"Idempotent-Replayed": "true"}
            )
        if previous is not None:
            # Another state of the incident this key reported under it (a fleet worker that
            # took the camera over re-confirms it, or the first sender's late redelivery):
            # an update, as a PATCH would be. Anything else under the key is a conflict.
            known = session.get(Report, (principal.namespace, report.id))
            if (
                known is None
                or previous.body.get("report_id") != report.id
                or not same_incident(known, report)
            ):
                raise Problem(
                    422,
                    "This Idempotency-Key was used for a different request",
                    kind="idempotency-key-reused",
                )
        status, receipt = ingest(
            session,
            ctx.settings,
            ctx.store,
            written,
            Incoming.from_report(report),
            pairs,
            principal,
        )
        after_sighting(session, _case(session, receipt.case_id), ctx.settings)
        body = receipt.model_dump(mode="json")
        if previous is not None:  # the key keeps its first answer, for exact replays
            ctx.metrics.reports.labels("updated").inc()
            return JSONResponse(body, status, headers={"Location": f"/v1/cases/{receipt.case_id}"})
        session.add(
            IdempotencyRecord(
                namespace=principal.namespace,
                key=idempotency_key,
                fingerprint=request_print,
                status_code=status,
                body=body,
                created_at=ctx.clock(),
            )
        )
    ctx.metrics.reports.labels("created" if status == 201 else "merged").inc()
    return JSONResponse(body, status, headers={"Location": f"/v1/cases/{receipt.case_id}"})


@router.patch(
    "/{case_id}",
    summary="Report a later observation",
    response_model=ObservationReceipt,
    responses=problems.responses(400, 401, 403, 404, 413, 422),
)
def patch_case(
    ctx: Ctx,
    principal: Ingest,
    case_id: CaseId,
    observation: Annotated[
        str,
        Form(
            description="The `Observation` as JSON",
            json_schema_extra={"contentMediaType": "application/json"},
        ),
    ],
    evidence: EvidenceFiles = [],  # noqa: B006
) -> ObservationReceipt:
    """Update `last_seen`, `cleared_at`, evidence and the plate of a case, by case id or
    report id.

    By report id it applies to that report; by case id to every report of the case.
    Idempotent: `last_seen` only moves forward, `cleared_at` is kept from the first time it
    is set, and evidence already on the case is not added twice. A case merged from several
    reports is cleared when all of them are.
    """
    obs = parse_json_field(Observation, observation, "observation")
    check_observation(obs, ctx.clock(), ctx.settings.max_clock_skew_s)
    pairs = match(obs.evidence, _uploads(ctx, evidence))
    with ctx.db.write() as session, staged(ctx.store) as written:
        case, reports = resolve_own(session, case_id, principal)
        changed = observe(
            session,
            ctx.store,
            written,
            case,
            reports,
            principal,
            last_seen=obs.last_seen,
            cleared_at=obs.cleared_at,
            pairs=pairs,
            plate=(obs.plate, obs.plate_confidence) if obs.plate is not None else None,
        )
        after_sighting(session, case, ctx.settings)
        return ObservationReceipt(
            case_id=case.id,
            report_ids=[r.id for r in reports],
            changed=changed,
            status=CaseStatus(case.status),
            last_seen=case.last_seen,
            cleared_at=case.cleared_at,
        )


def _case(session: Session, case_id: str) -> Case:
    return session.scalars(select(Case).where(Case.id == case_id)).one()


_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,64}={0,2}")


def _decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise Problem(400, "Invalid cursor", kind="invalid-cursor")
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode("ascii")
    except (ValueError, binascii.Error):
        raise Problem(400, "Invalid cursor", kind="invalid-cursor") from None
    if not text.startswith("case:"):
        raise Problem(400, "Invalid cursor", kind="invalid-cursor")
    return sequence(text.removeprefix("case:"))


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"case:{seq}".encode()).decode()


def _bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in raw.split(","))
    except ValueError:
        raise Problem(
            400, "bbox must be min_lon,min_lat,max_lon,max_lat", kind="invalid-bbox"
        ) from None
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180) or not (
        -90 <= min_lat <= 90 and -90 <= max_lat <= 90
    ):  # NaN fails these too
        raise Problem(400, "bbox is outside WGS 84 (or not a number)", kind="invalid-bbox")
    if min_lon > max_lon or min_lat > max_lat:
        raise Problem(400, "bbox minimum exceeds maximum", kind="invalid-bbox")
    return min_lon, min_lat, max_lon, max_lat


@router.get(
    "",
    summary="List cases",
    response_model=CasePage,
    responses=problems.responses(400, 401, 403, 422),
)
def list_cases(
    ctx: Ctx,
    _: Dispatch,
    status: Annotated[list[CaseStatus] | None, Query(description="Any of these")] = None,
    type: Annotated[IncidentType | None, Query()] = None,
    camera: Annotated[
        str | None, Query(max_length=128, description="Reported by this camera")
    ] = None,
    grid: Annotated[
        str | None, Query(max_length=64, description="In this grid cell (单元网格)")
    ] = None,
    department: Annotated[
        str | None, Query(max_length=200, description="Dispatched to (or proposed for) it")
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="Only dispatched cases past their deadline (or not)")
    ] = None,
    since: Annotated[datetime | None, Query(description="Seen at or after")] = None,
    until: Annotated[datetime | None, Query(description="Seen at or before")] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="On the map: `min_lon,min_lat,max_lon,max_lat` (WGS 84); the case's "
            "`position` where it has one, else its camera's `location`"
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=100, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CasePage:
    """Cases, newest first, filtered; follow `next_cursor` for more."""
    query: Select[tuple[Case]] = select(Case).order_by(Case.seq.desc()).limit(limit + 1)
    if status:
        query = query.where(Case.status.in_([s.value for s in status]))
    if type is not None:
        query = query.where(Case.type == type.value)
    if camera is not None:
        query = query.where(Case.reports.any(Report.camera_id == camera))
    if grid is not None:
        query = query.where(Case.grid == grid)
    if department is not None:
        query = query.where(Case.department == department)
    now = ctx.clock()
    if overdue is not None:
        late = (Case.status == CaseStatus.dispatched) & (Case.deadline <= now)
        query = query.where(late if overdue else ~late | Case.deadline.is_(None))
    if since is not None:
        query = query.where(Case.last_seen >= query_time(since, "since"))
    if until is not None:
        query = query.where(Case.first_seen <= query_time(until, "until"))
    if bbox is not None:
        min_lon, min_lat, max_lon, max_lat = _bbox(bbox)
        # Where the object is when a calibrated camera said so, else where the camera is.
        lat = func.coalesce(Case.position_lat, Case.lat)
        lon = func.coalesce(Case.position_lon, Case.lon)
        query = query.where(lon.between(min_lon, max_lon), lat.between(min_lat, max_lat))
    if cursor is not None:
        query = query.where(Case.seq < _decode_cursor(cursor))
    with ctx.db.read() as session:
        cases = list(session.scalars(query))
        more = len(cases) > limit
        cases = cases[:limit]
        return CasePage(
            items=[case_out(c, now) for c in cases],
            next_cursor=_encode_cursor(cases[-1].seq) if more else None,
        )


@router.get(
    "/{case_id}",
    summary="Get a case with its history",
    response_model=CaseDetail,
    responses=problems.responses(401, 403, 404, 409, 422),
)
def get_case(ctx: Ctx, _: Dispatch, case_id: CaseId) -> CaseDetail:
    """A case by its id (or the id of a report it absorbed), with every change made to it."""
    with ctx.db.read() as session:
        case, _reports = resolve(session, case_id)
        history = session.scalars(
            select(Change).where(Change.case_seq == case.seq).order_by(Change.seq)
        )
        out = case_out(case, ctx.clock()).model_dump()
        return CaseDetail(**out, history=[change_out(c) for c in history])


@router.post(
    "/{case_id}/transitions",
    summary="Move a case through its lifecycle",
    response_model=CaseOut,
    responses=problems.responses(401, 403, 404, 409, 422),
    description="Changes the case's status and records who, when, from, to and why in its "
    "history. Allowed transitions:\n\n" + table_markdown() + "\n\nAny other is refused "
    "with 409 and changes nothing.",
)
def post_transition(ctx: Ctx, principal: Dispatch, case_id: CaseId, body: TransitionIn) -> CaseOut:
    with ctx.db.write() as session:
        case, _reports = resolve(session, case_id)
        transition(session, case, body, principal, ctx.settings)
        out = case_out(case, ctx.clock())
    ctx.metrics.transitions.labels(body.to.value).inc()
    return out


@router.get(
    "/{case_id}/evidence/{sha256}/annotated",
    summary="Download an evidence image with its boxes drawn",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "An annotated copy (JPEG)"},
        **problems.responses(401, 403, 404, 422),
    },
)
def get_annotated(
    ctx: Ctx,
    _: Dispatch,
    case_id: CaseId,
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The image's SHA-256")],
    view: Annotated[
        EvidenceView,
        Query(description="`original` (the key's `dispatch` scope sees it) or its rendition"),
    ] = "original",
) -> Response:
    """The stored image is the unaltered frame; this draws the worker's boxes and labels, the
    reviewer's corrected box (green) and a caption on a copy of it, or with
    `view=deidentified` (or `sha256` naming the rendition) on a copy of its de-identified
    rendition (404 if it has none)."""
    return annotated_response(ctx, case_id, sha256, view)


@router.put(
    "/{case_id}/box",
    summary="Correct a case's box",
    response_model=CaseOut,
    responses=problems.responses(401, 403, 404, 409, 422),
)
def put_box(ctx: Ctx, principal: Dispatch, case_id: CaseId, body: BoxIn) -> CaseOut:
    """A reviewer's box for the object, in pixels of the case's evidence images: what
    `streetwatch dataset export` labels the case's frames with instead of the worker's box.
    Each correction is a `box_corrected` change (history, feed, webhooks) with the old box."""
    with ctx.db.write() as session:
        case, _reports = resolve(session, case_id)
        set_reviewed_box(session, case, body.bbox, principal)
        return case_out(case, ctx.clock())
