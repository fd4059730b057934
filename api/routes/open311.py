"""An Open311 GeoReport v2 view of the cases, at `/open311/v2/` (JSON format only).

Services are the event codes of the code table; statuses map to `open` (still in the
workflow) and `closed` (closed, rejected, or merged as a duplicate). Keys go in the
`api_key` parameter, as Open311 clients send them, or as a Bearer header; reading needs
`dispatch`, posting `ingest`. Errors use Open311's `[{"code", "description"}]` format.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import Credentials, Principal, Scope, authenticate
from api.context import Context, Ctx
from api.contract import CaseStatus, Location
from api.intake import Incoming, ingest
from api.lifecycle import OPEN311_CLOSED
from api.problems import Problem
from api.tables import Case, utcnow

router = APIRouter(prefix="/open311/v2", tags=["open311"])


class Open311Error(BaseModel):
    code: int
    description: str


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = False
    type: Literal["realtime", "batch", "blackbox"] = "realtime"
    keywords: str
    group: str


class ServiceRequest(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str | None
    service_code: str
    description: str | None
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None = None
    address: str | None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float | None
    long: float | None
    media_url: str | None


class Created(BaseModel):
    service_request_id: str
    service_notice: str | None = None
    account_id: str | None = None


ERRORS: dict[int | str, dict] = {  # type: ignore[type-arg]
    s: {"model": list[Open311Error], "description": d}
    for s, d in ((400, "Bad request"), (401, "No or bad key"), (403, "Key lacks the scope"))
}


def _principal(
    ctx: Context, credentials: Credentials, api_key: str | None, scope: Scope
) -> Principal:
    key = api_key or (credentials.credentials if credentials else None)
    with ctx.db.read() as session:
        return authenticate(session, key, scope)


@router.get("/services.json", summary="Service list", response_model=list[Service])
def services(ctx: Ctx) -> list[Service]:
    table = ctx.settings.codes
    return [
        Service(
            service_code=c.code,
            service_name=c.name,
            description=c.description,
            keywords=c.type,
            group=table.standard,
        )
        for c in table.codes
    ]


def _request_out(ctx: Context, request: Request, case: Case) -> ServiceRequest:
    code = ctx.settings.codes.get(case.event_code)
    media = case.evidence[0].sha256 if case.evidence else None
    return ServiceRequest(
        service_request_id=case.id,
        status="closed" if CaseStatus(case.status) in OPEN311_CLOSED else "open",
        status_notes=case.status,
        service_name=code.name if code else None,
        service_code=case.event_code,
        description=case.description,
        requested_datetime=case.created_at,
        updated_datetime=case.updated_at,
        address=case.address,
        lat=case.lat,
        long=case.lon,
        media_url=str(request.url_for("evidence", sha256=media)) if media else None,
    )


@router.get(
    "/requests.json",
    summary="Query service requests",
    response_model=list[ServiceRequest],
    responses=ERRORS,
)
def get_requests(
    ctx: Ctx,
    request: Request,
    credentials: Credentials,
    api_key: str | None = None,
    service_request_id: Annotated[str | None, Query(description="Comma-separated ids")] = None,
    service_code: str | None = None,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    status: Literal["open", "closed"] | None = None,
) -> list[ServiceRequest]:
    """The newest 1000 requests matching the filters (Open311's own limit)."""
    _principal(ctx, credentials, api_key, Scope.dispatch)
    query = select(Case).order_by(Case.seq.desc()).limit(1000)
    if service_request_id:
        query = query.where(Case.id.in_(service_request_id.split(",")))
    if service_code:
        query = query.where(Case.event_code == service_code)
    if start_date:
        query = query.where(Case.created_at >= start_date)
    if end_date:
        query = query.where(Case.created_at <= end_date)
    if status:
        closed = [s.value for s in OPEN311_CLOSED]
        query = query.where(
            Case.status.in_(closed) if status == "closed" else Case.status.not_in(closed)
        )
    with ctx.db.read() as session:
        return [_request_out(ctx, request, c) for c in session.scalars(query)]


@router.get(
    "/requests/{service_request_id}.json",
    summary="One service request",
    response_model=list[ServiceRequest],
    responses={**ERRORS, 404: {"model": list[Open311Error], "description": "No such request"}},
)
def get_request(
    ctx: Ctx,
    request: Request,
    credentials: Credentials,
    service_request_id: str,
    api_key: str | None = None,
) -> list[ServiceRequest]:
    _principal(ctx, credentials, api_key, Scope.dispatch)
    with ctx.db.read() as session:
        case = session.scalar(select(Case).where(Case.id == service_request_id))
        if case is None:
            raise Problem(404, f"No service request {service_request_id}")
        return [_request_out(ctx, request, case)]


@router.post(
    "/requests.json",
    summary="Create a service request",
    status_code=201,
    response_model=list[Created],
    responses={
        **ERRORS,
        200: {"model": list[Created], "description": "Merged into an open request"},
    },
)
def post_request(
    ctx: Ctx,
    credentials: Credentials,
    service_code: Annotated[str, Form()],
    api_key: Annotated[str | None, Form()] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    long: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    description: Annotated[str | None, Form(max_length=4000)] = None,
) -> JSONResponse:
    """A report from outside the camera network; it merges with camera cases like any other
    report (same type, within the merge distance and window)."""
    principal = _principal(ctx, credentials, api_key, Scope.ingest)
    code = ctx.settings.codes.get(service_code)
    if code is None:
        raise Problem(400, f"Unknown service_code {service_code}")
    if (lat is None or long is None) and not address_string:
        raise Problem(400, "A location is required: lat and long, or address_string")
    now = utcnow()
    incoming = Incoming(
        id=f"open311_{secrets.token_hex(8)}",
        source="open311",
        type=code.type,
        event_code=code.code,
        first_seen=now,
        confirmed_at=now,
        last_seen=now,
        payload={
            "service_code": service_code,
            "lat": lat,
            "long": long,
            "address_string": address_string,
            "description": description,
        },
        location=Location(lat=lat, lon=long, address=address_string),
        description=description,
    )
    with ctx.db.write() as session:
        status, receipt = ingest(session, ctx.settings, ctx.store, [], incoming, [], principal)
    notice = "Merged into an open request" if receipt.merged else None
    body = [Created(service_request_id=receipt.case_id, service_notice=notice).model_dump()]
    return JSONResponse(body, status)
