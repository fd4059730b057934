"""An Open311 GeoReport v2 view of the cases, at `/open311/v2/`, in XML (the spec's default
format) and JSON: the extension of the path picks it (`services.xml`, `requests.json`).

- `discovery`, `services`, `services/{service_code}` (a service definition: our services
  take no extra attributes), `requests` (GET and POST) and `requests/{id}`.
- Services are the event codes of the code table; statuses map to `open` (still in the
  workflow) and `closed` (closed, rejected, or merged as a duplicate); `status_notes` is the
  note of the case's latest transition.
- `GET requests`: `service_request_id` (comma-separated) overrides every other argument;
  `service_code` and `status` are comma-separated; without dates the window is the last
  90 days, and no window may span more than 90 days (both configurable); at most 1000.
- `media_url` is a signed link (`/v1/media/{sha256}?expires=…&signature=…`) under the
  configured public URL, so an Open311 client can fetch it without a key. It links the
  de-identified rendition of the case's first evidence image that has one, never an
  original: a case whose evidence has no rendition (stored before renditions) has none.
- Keys go in the `api_key` parameter, as Open311 clients send them, or as a Bearer header;
  reading needs `dispatch`, posting the citizen-intake scope `open311`. With
  `open311_public_reads` on, GeoReport v2's reads are public, as the spec has them: a `GET
  requests` without a key gets the public view, which leaves out `status_notes` (a reviewer's
  note, written for colleagues); a key, when one is sent, is checked and gets the keyed view.
- `jurisdiction_id` is accepted and ignored: a server is one jurisdiction.
- Errors use Open311's `<errors><error><code/><description/></error></errors>` (or its JSON
  list), always with a 4xx status.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.contract import CaseStatus, Location, Position, Storable
from api.server.auth import Credentials, Principal, Scope, authenticate
from api.server.context import Context, Ctx
from api.server.intake import Incoming, ingest
from api.server.lifecycle import OPEN311_CLOSED
from api.server.metrics import version
from api.server.middleware import AuthFirstRoute
from api.server.open311_format import XML_TYPE, document, respond_list, to_xml_object, wants_json
from api.server.problems import Problem
from api.server.renditions import media_url, public_sha
from api.server.tables import Case, Change

router = APIRouter(route_class=AuthFirstRoute, prefix="/open311/v2", tags=["open311"])
SPEC = "http://wiki.open311.org/GeoReport_v2"
MAX_REQUESTS = 1000

Format = Annotated[Literal["xml", "json"], Path(description="`xml` (the default) or `json`")]
ApiKey = Annotated[
    str | None, Query(max_length=200, description="The key, as Open311 clients send it")
]
Jurisdiction = Annotated[
    str | None, Query(max_length=64, description="Accepted and ignored: one jurisdiction")
]
FormText = Annotated[str, Storable]


class Open311Error(BaseModel):
    code: int
    description: str


class Endpoint(BaseModel):
    specification: str
    url: str
    changeset: datetime
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(BaseModel):
    changeset: datetime
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = False
    type: Literal["realtime", "batch", "blackbox"] = "realtime"
    keywords: str
    group: str


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]] = Field(description="Always empty: no extra attributes")


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


def _formats(model: Any, description: str) -> dict[str, Any]:
    return {"model": model, "description": description, "content": {"text/xml": {}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    s: _formats(list[Open311Error], d)
    for s, d in ((400, "Bad request"), (401, "No or bad key"), (403, "Key lacks the scope"))
}
NOT_FOUND = {404: _formats(list[Open311Error], "Not found")}


def _principal(
    ctx: Context, credentials: Credentials, api_key: str | None, scope: Scope
) -> Principal:
    key = api_key or (credentials.credentials if credentials else None)
    with ctx.db.read() as session:
        return authenticate(session, key, scope)


def _reader(ctx: Context, credentials: Credentials, api_key: str | None) -> Principal | None:
    """Who reads service requests: a dispatch key's holder, or (None) the public, when public
    reads are on and no key came; a key that came is checked either way, so a wrong one is
    never quietly served the public view."""
    if api_key or credentials:
        return _principal(ctx, credentials, api_key, Scope.dispatch)
    if ctx.settings.open311_public_reads:
        return None
    raise Problem(
        401,
        "Reading service requests needs an api_key with the dispatch scope: this server "
        "does not serve Open311 reads publicly (open311_public_reads is off)",
        kind="unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="streetwatch"'},
    )


def _object(request: Request, root: str, value: BaseModel) -> Response:
    data = value.model_dump(mode="json")
    if wants_json(request.url.path):
        return Response(value.model_dump_json(), media_type="application/json")
    return Response(to_xml_object(root, data), media_type=XML_TYPE)


STARTED = datetime.now(UTC).replace(microsecond=0)


@router.get(
    "/discovery.{format}",
    summary="Discovery: where the endpoint is and what it speaks",
    response_model=None,
    responses={200: _formats(Discovery, "The discovery document"), **ERRORS},
)
def discovery(ctx: Ctx, request: Request, format: Format) -> Response:
    base = ctx.settings.base_url
    doc = Discovery(
        changeset=STARTED,
        contact=f"StreetWatch {version()}",
        key_service="Keys are issued by the operator (streetwatch keys create)",
        endpoints=[
            Endpoint(
                specification=SPEC,
                url=f"{base}/open311/v2",
                changeset=STARTED,
                type="production",
                formats=["text/xml", "application/json"],
            )
        ],
    )
    if wants_json(request.url.path):
        return Response(doc.model_dump_json(), media_type="application/json")
    data = doc.model_dump(mode="json")
    for endpoint in data["endpoints"]:  # <formats><format>…</format></formats>
        endpoint["formats"] = {"format": endpoint["formats"]}
    data["endpoints"] = {"endpoint": data["endpoints"]}
    return Response(_discovery_xml(data), media_type=XML_TYPE)


def _discovery_xml(data: dict[str, Any]) -> bytes:
    from xml.etree import ElementTree as ET

    def build(parent: ET.Element, name: str, value: Any) -> None:
        if isinstance(value, list):
            for v in value:
                build(parent, name, v)
            return
        child = ET.SubElement(parent, name)
        if isinstance(value, dict):
            for k, v in value.items():
                build(child, k, v)
        elif value is not None:
            child.text = str(value)

    root = ET.Element("discovery")
    for k, v in data.items():
        build(root, k, v)
    return document(root)


def _service(ctx: Context, code: Any) -> Service:
    return Service(
        service_code=code.code,
        service_name=code.name,
        description=code.description,
        keywords=code.type,
        group=ctx.settings.codes.standard,
    )


@router.get(
    "/services.{format}",
    summary="Service list",
    response_model=None,
    responses={200: _formats(list[Service], "The services"), **ERRORS},
)
def services(ctx: Ctx, request: Request, format: Format, jurisdiction_id: Jurisdiction = None):
    rows = [_service(ctx, c).model_dump(mode="json") for c in ctx.settings.codes.codes]
    return respond_list(request.url.path, "services", "service", rows)


@router.get(
    "/services/{service_code}.{format}",
    summary="Service definition",
    response_model=None,
    responses={200: _formats(ServiceDefinition, "The definition"), **ERRORS, **NOT_FOUND},
)
def service_definition(
    ctx: Ctx,
    request: Request,
    service_code: Annotated[str, Path(max_length=32)],
    format: Format,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    if ctx.settings.codes.get(service_code) is None:
        raise Problem(404, f"No service {service_code}")
    return _object(
        request, "service_definition", ServiceDefinition(service_code=service_code, attributes=[])
    )


def _request_out(
    ctx: Context, case: Case, notes: dict[int, str | None], public: bool
) -> ServiceRequest:
    code = ctx.settings.codes.get(case.event_code)
    # Only a de-identified rendition of a frame is public (never a dwell thumbnail); a case
    # without one has no media.
    media = next((sha for e in case.evidence if e.kind != "dwell" and (sha := public_sha(e))), None)
    return ServiceRequest(
        service_request_id=case.id,
        status="closed" if CaseStatus(case.status) in OPEN311_CLOSED else "open",
        # A transition's note is a reviewer's, written for colleagues: keyed readers only.
        status_notes=None if public else notes.get(case.seq),
        service_name=code.name if code else None,
        service_code=case.event_code,
        description=case.description,
        agency_responsible=case.department if case.dispatched_at else None,
        expected_datetime=case.deadline,
        requested_datetime=case.created_at,
        updated_datetime=case.updated_at,
        address=case.address,
        lat=case.position_lat if case.position_lat is not None else case.lat,
        long=case.position_lon if case.position_lon is not None else case.lon,
        media_url=media_url(ctx.settings, ctx.server_key, media) if media else None,
    )


def _requests_out(
    ctx: Context, session: Any, cases: list[Case], public: bool
) -> list[dict[str, Any]]:
    notes: dict[int, str | None] = {}
    if cases and not public:
        rows = session.execute(
            select(Change.case_seq, Change.note)
            .where(Change.case_seq.in_([c.seq for c in cases]), Change.kind == "transition")
            .order_by(Change.seq)
        )
        for seq, note in rows:
            notes[seq] = note  # the latest transition's note wins
    return [_request_out(ctx, c, notes, public).model_dump(mode="json") for c in cases]


def _date(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Problem(400, f"{name} is not a W3C date-time") from None
    if ts.tzinfo is None:
        raise Problem(400, f"{name} needs a UTC offset, e.g. 2025-06-01T08:00:00+08:00")
    try:
        return ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Problem(400, f"{name} is out of range") from None


def _window(
    ctx: Context, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    default = timedelta(days=ctx.settings.open311_default_days)
    longest = timedelta(days=ctx.settings.open311_max_days)
    try:
        if start is None and end is None:
            end = ctx.clock()
            start = end - default
        elif start is None:
            assert end is not None
            start = end - default
        elif end is None:
            end = start + default
    except OverflowError:
        raise Problem(400, "start_date or end_date is out of range") from None
    if start > end:
        raise Problem(400, "start_date is after end_date")
    if end - start > longest:
        raise Problem(400, f"start_date..end_date spans more than {longest.days} days")
    return start, end


def _list(raw: str | None, name: str, allowed: set[str] | None = None) -> list[str]:
    values = [v.strip() for v in (raw or "").split(",") if v.strip()]
    if allowed is not None and (bad := sorted(set(values) - allowed)):
        raise Problem(400, f"Unknown {name}: {', '.join(bad)}")
    return values


@router.get(
    "/requests.{format}",
    summary="Query service requests",
    response_model=None,
    responses={200: _formats(list[ServiceRequest], "The requests, newest first"), **ERRORS},
)
def get_requests(
    ctx: Ctx,
    request: Request,
    credentials: Credentials,
    format: Format,
    api_key: ApiKey = None,
    jurisdiction_id: Jurisdiction = None,
    service_request_id: Annotated[
        str | None, Query(max_length=4000, description="Comma-separated; overrides the rest")
    ] = None,
    service_code: Annotated[
        str | None, Query(max_length=1000, description="Comma-separated")
    ] = None,
    start_date: Annotated[str | None, Query(max_length=64)] = None,
    end_date: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[
        str | None, Query(max_length=20, description="`open`, `closed` or `open,closed`")
    ] = None,
) -> Response:
    """At most 1000 requests, newest first. Without dates: those of the last 90 days.
    Needs a dispatch key, unless the server's `open311_public_reads` is on: then a request
    without a key gets the public view (no `status_notes`)."""
    public = _reader(ctx, credentials, api_key) is None
    query = select(Case).order_by(Case.seq.desc()).limit(MAX_REQUESTS)
    ids = _list(service_request_id, "service_request_id")
    if ids:  # the spec: "all other parameters should be ignored"
        query = query.where(Case.id.in_(ids[:MAX_REQUESTS]))
    else:
        start, end = _window(ctx, _date(start_date, "start_date"), _date(end_date, "end_date"))
        query = query.where(Case.created_at >= start, Case.created_at <= end)
        if codes := _list(service_code, "service_code"):
            query = query.where(Case.event_code.in_(codes))
        statuses = set(_list(status, "status", {"open", "closed"}))
        if statuses == {"open"} or statuses == {"closed"}:
            closed = [s.value for s in OPEN311_CLOSED]
            query = query.where(
                Case.status.in_(closed) if statuses == {"closed"} else Case.status.not_in(closed)
            )
    with ctx.db.read() as session:
        rows = _requests_out(ctx, session, list(session.scalars(query)), public)
    return respond_list(request.url.path, "service_requests", "request", rows)


@router.get(
    "/requests/{service_request_id}.{format}",
    summary="One service request",
    response_model=None,
    responses={200: _formats(list[ServiceRequest], "The request"), **ERRORS, **NOT_FOUND},
)
def get_request(
    ctx: Ctx,
    request: Request,
    credentials: Credentials,
    service_request_id: Annotated[str, Path(max_length=128)],
    format: Format,
    api_key: ApiKey = None,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """Needs a dispatch key, unless `open311_public_reads` is on (as `GET requests`)."""
    public = _reader(ctx, credentials, api_key) is None
    with ctx.db.read() as session:
        case = session.scalar(select(Case).where(Case.id == service_request_id))
        if case is None:
            raise Problem(404, f"No service request {service_request_id}")
        rows = _requests_out(ctx, session, [case], public)
    return respond_list(request.url.path, "service_requests", "request", rows)


@router.post(
    "/requests.{format}",
    summary="Create a service request",
    status_code=201,
    response_model=None,
    responses={
        201: _formats(list[Created], "A new request"),
        200: _formats(list[Created], "Merged into an open request"),
        **ERRORS,
    },
)
def post_request(
    ctx: Ctx,
    request: Request,
    credentials: Credentials,
    format: Format,
    service_code: Annotated[str, Form(max_length=32)],
    api_key: Annotated[str | None, Form(max_length=200)] = None,
    jurisdiction_id: Annotated[str | None, Form(max_length=64)] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    long: Annotated[float | None, Form(ge=-180, le=180)] = None,
    address_string: Annotated[FormText | None, Form(max_length=500)] = None,
    address_id: Annotated[FormText | None, Form(max_length=64)] = None,
    description: Annotated[FormText | None, Form(max_length=4000)] = None,
    media_url: Annotated[FormText | None, Form(max_length=2048)] = None,
) -> Response:
    """A report from outside the camera network (needs the `open311` scope); it merges
    with camera cases like any other report (same type, within the merge distance and
    window). `media_url` is kept with the report, never fetched."""
    query_key = request.query_params.get("api_key")
    principal = _principal(ctx, credentials, api_key or query_key, Scope.open311)
    code = ctx.settings.codes.get(service_code)
    if code is None:
        raise Problem(400, f"Unknown service_code {service_code}")
    if (lat is None or long is None) and not address_string:
        raise Problem(400, "A location is required: lat and long, or address_string")
    now = ctx.clock()
    location = Location.model_validate({"lat": lat, "lon": long, "address": address_string})
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
            "address_id": address_id,
            "description": description,
            "media_url": media_url,
        },
        location=location,
        # A citizen's pin is where the incident is, not where a camera stands.
        position=Position(lat=lat, lon=long) if lat is not None and long is not None else None,
        description=description,
    )
    with ctx.db.write() as session:
        status, receipt = ingest(session, ctx.settings, ctx.store, [], incoming, [], principal)
    notice = "Merged into an open request" if receipt.merged else None
    row = Created(service_request_id=receipt.case_id, service_notice=notice).model_dump()
    return respond_list(request.url.path, "service_requests", "request", [row], status)


# AuthFirst: the key may come in the form itself, so a keyless POST is read, but capped.
post_request.required_scope = Scope.open311  # type: ignore[attr-defined]
post_request.key_in_form = True  # type: ignore[attr-defined]
