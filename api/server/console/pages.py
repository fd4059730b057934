"""The console's pages: sign-in, queue, case, suppressions, cameras, statistics.

Every page needs a session (`api.server.console.sessions`); reading cases needs the key's
`dispatch` or `review` scope, acting on them and seeing original evidence `dispatch`, exactly
as the API does (api.server.renditions says who sees which image), and every action is the
API's own transition. Templates are Jinja2 with autoescaping: case fields come from workers and are
treated as untrusted text.

No handler touches the database on the event loop: the handlers are plain functions, which
run on the thread pool, and a posted form is read (asynchronously) by the `posted_form`
dependency before the handler starts. One request waiting for the write lock therefore
holds up nobody else.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy import and_, func, or_, select

from api.contract import CaseStatus, IncidentType
from api.contract.suppression_rules import DEFAULT_TZ, RejectReason, Schedule, SuppressionOptions
from api.server import routing
from api.server.auth import Scope, person
from api.server.boxes import BoxIn, annotated_response, set_reviewed_box
from api.server.camera_health import cameras as camera_list
from api.server.camera_health import thumbnail_response
from api.server.console import sessions, stats
from api.server.console.i18n import DEFAULT, LANGS, Translator
from api.server.console.sessions import SignInRequired, User, check_csrf, current_user
from api.server.console.strip import strips_of
from api.server.console.throttle import Throttle
from api.server.desk import routed_department
from api.server.evidence import image_response
from api.server.intake import resolve
from api.server.lifecycle import TRANSITIONS, allowed
from api.server.problems import Problem
from api.server.renditions import (
    NEVER_PUBLIC,
    EvidenceView,
    audit,
    is_rendition,
    original_views,
    public_sha,
)
from api.server.routing import Urgency
from api.server.schemas import EvidenceOut, TransitionIn
from api.server.serialize import case_out
from api.server.suppression_store import SuppressionPatch, get_row, list_rows, update
from api.server.tables import Case, CaseEvidence, Change, Report
from api.server.transitions import transition

HERE = Path(__file__).parent
TZ = ZoneInfo(DEFAULT_TZ)
QUEUE_LIMIT = 200
OPEN = (CaseStatus.reported, CaseStatus.accepted, CaseStatus.dispatched)


def security_headers(tile_url: str | None = None) -> dict[str, str]:
    """The headers of every console page. The Content-Security-Policy allows our own
    scripts, styles and images only, and the map's tile server when one is configured."""
    images = "'self'"
    if tile_url and "://" in tile_url:
        scheme, rest = tile_url.split("://", 1)
        images += f" {scheme}://{rest.split('/', 1)[0]}"
    csp = (
        f"default-src 'none'; script-src 'self'; style-src 'self'; img-src {images}; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null"
        "Cache-Control": "no-store",
    }


SECURITY_HEADERS = security_headers()
ACTIONS = {  # console action -> target status, keyboard key
    "accept": (CaseStatus.accepted, "a"),
    "reject": (CaseStatus.rejected, "r"),
    "duplicate": (CaseStatus.duplicate, "d"),
    "dispatch": (CaseStatus.dispatched, "p"),
    "resolve": (CaseStatus.resolved, "v"),
    "close": (CaseStatus.closed, "c"),
}

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def local(ts: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return ts.astimezone(TZ).strftime(fmt) if ts else "—"


env.filters["local"] = local
env.filters["person"] = person
env.globals["local"] = local  # for Translator.note
env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.0f}%"

router = APIRouter(prefix="/console", include_in_schema=False)


def install(app: Any) -> None:
    """Routes, the sign-in redirect, and the console's security headers."""
    from fastapi.staticfiles import StaticFiles

    settings = app.state.ctx.settings
    app.state.sign_in_throttle = Throttle(settings.sign_in_attempts, settings.sign_in_window_s)
    # The desk's pages live in their own modules and add their routes to this router.
    from api.server.console import desk_map, supervision  # noqa: F401

    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        if request.headers.get("x-requested-with") == "fetch":
            return JSONResponse({"detail": "sign in"}, 401, headers=SECURITY_HEADERS)
        return RedirectResponse("/console/login", 303, headers=SECURITY_HEADERS)

    @app.exception_handler(_Forbidden)
    def _forbidden(request: Request, exc: _Forbidden) -> Response:  # on the thread pool
        return forbidden(request, exc.user)

    app.add_middleware(ConsoleHeaders, headers=security_headers(settings.map_tile_url))


class ConsoleHeaders:
    """The console's security headers on every `/console` response (pure ASGI: the body
    streams through untouched, so the API's body limits behave as without it)."""

    def __init__(self, app: Any, headers: dict[str, str] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower().decode() not in _REPLACED
                ]
                for k, v in self.headers.items():
                    if k == "Cache-Control" and b"cache-control" in names:
                        continue  # evidence keeps its own caching
                    headers.append((k.lower().encode(), v.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_REPLACED = {k.lower() for k in SECURITY_HEADERS} - {"cache-control"}


# -- helpers ---------------------------------------------------------------------------


def lang_of(request: Request) -> str:
    lang = request.cookies.get(sessions.LANG_COOKIE, DEFAULT)
    return lang if lang in LANGS else DEFAULT


def codes_of(request: Request) -> dict[str, str]:
    return {c.code: c.name for c in request.app.state.ctx.settings.codes.codes}


def render(
    request: Request, name: str, user: User | None, status: int = 200, **values: Any
) -> HTMLResponse:
    lang = lang_of(request)
    t = Translator(lang)
    flash = sessions.take_flash(request, user) if user else None
    html = env.get_template(name).render(
        t=t,
        lang=lang,
        user=user,
        csrf=user.csrf if user else values.pop("login_csrf", ""),
        flash=flash,
        codes=codes_of(request),
        path=request.url.path,
        here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        **values,
    )
    return HTMLResponse(html, status)


def need(user: User, scope: Scope) -> None:
    if not user.may(scope):
        raise Problem(403, f"This key lacks the '{scope}' scope", kind="forbidden", scope=scope)


def reader(request: Request) -> User:
    user = current_user(request)
    if not (user.may(Scope.dispatch) or user.may(Scope.review)):
        raise _Forbidden(user)
    return user


def evidence_view(request: Request, user: User) -> EvidenceView:
    """What the case page shows: originals to `dispatch` sessions unless they toggled to the
    de-identified view (`?view=deidentified`); renditions to everyone else."""
    if user.may(Scope.dispatch) and request.query_params.get("view") != "deidentified":
        return "original"
    return "deidentified"


def shown_image(e: EvidenceOut, case_id: str, view: EvidenceView) -> tuple[str, str] | None:
    """(image URL, annotated download URL) of an evidence image as the case page shows it
    in `view`: the original (each fetch audited), else its rendition; None when there is
    nothing to show (no rendition, or the original deleted and no rendition)."""
    if view == "original" and e.removed_at is None:
        return (
            f"/console/evidence/{e.sha256}?case={case_id}",
            f"/console/cases/{case_id}/evidence/{e.sha256}/annotated",
        )
    if e.deidentified is None or e.kind in NEVER_PUBLIC:
        return None
    return (
        f"/console/evidence/{e.deidentified.sha256}",
        f"/console/cases/{case_id}/evidence/{e.deidentified.sha256}/annotated",
    )


class _Forbidden(Exception):
    def __init__(self, user: User) -> None:
        self.user = user


async def posted_form(request: Request) -> dict[str, str]:
    """The posted form's text fields, read on the event loop before the handler runs."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


PostedForm = Annotated[dict[str, str], Depends(posted_form)]


def form_of(request: Request, user: User, form: dict[str, str]) -> dict[str, str]:
    """The form, once its CSRF token (or the `X-CSRF-Token` header) is the session's."""
    check_csrf(request, user.csrf, request.headers.get("x-csrf-token") or form.get("csrf"))
    return form


def safe_next(value: str | None, default: str = "/console") -> str:
    """Only our own pages: never an open redirect."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return default


# -- the queue -------------------------------------------------------------------------

FILTERS = ("status", "type", "camera", "grid", "plate", "since", "until", "order")
PLATE_HISTORY = timedelta(days=30)  # a case page counts the plate's cases this far back


def filters_of(request: Request) -> dict[str, str]:
    q = request.query_params
    out = {k: q[k][:128] for k in FILTERS if q.get(k)}
    if "plate" in out:  # as plates are stored: upper case, no spaces or dots
        out["plate"] = "".join(c for c in out["plate"].upper() if c.isalnum())[:16]
        if not out["plate"]:
            del out["plate"]
    out.setdefault("status", "reported")
    return out


def _day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        d = date.fromisoformat(value)
    except ValueError:
        return None
    moment = datetime.combine(d + timedelta(days=1) if end else d, time(), TZ)
    return moment


def _conditions(f: dict[str, str], skip: str | None = None) -> list[Any]:
    conds: list[Any] = []
    if skip != "status" and f.get("status") == "open":  # still being worked on
        conds.append(Case.status.in_([s.value for s in OPEN]))
    elif skip != "status" and f.get("status") not in (None, "all"):
        conds.append(Case.status == f["status"])
    if skip != "type" and f.get("type"):
        conds.append(Case.type == f["type"])
    if skip != "camera" and f.get("camera"):  # its first camera, or any report's
        conds.append(
            or_(Case.camera_id == f["camera"], Case.reports.any(Report.camera_id == f["camera"]))
        )
    if skip != "grid" and f.get("grid"):
        conds.append(Case.grid == f["grid"])
    if f.get("plate"):  # any part of it: a reviewer often has only some characters
        conds.append(Case.plate.contains(f["plate"], autoescape=True))
    if (since := _day(f.get("since"))) is not None:
        conds.append(Case.last_seen >= since)
    if (until := _day(f.get("until"), end=True)) is not None:
        conds.append(Case.first_seen < until)
    return conds


def queue_cases(session: Any, f: dict[str, str]) -> list[Case]:
    order = Case.seq.asc() if f.get("order") == "oldest" else Case.seq.desc()
    query = select(Case).where(and_(True, *_conditions(f))).order_by(order).limit(QUEUE_LIMIT)
    return list(session.scalars(query))


def facet_counts(session: Any, f: dict[str, str]) -> dict[str, list[tuple[str, int]]]:
    """Per filter, the count of each value under the other filters."""
    out: dict[str, list[tuple[str, int]]] = {}
    for name, column in (("status", Case.status), ("type", Case.type), ("grid", Case.grid)):
        rows = session.execute(
            select(column, func.count())
            .where(and_(True, *_conditions(f, skip=name)))
            .group_by(column)
        ).all()
        found = [(v, n) for v, n in rows if v is not None]
        if name == "status":  # in lifecycle order, as a reviewer reads them
            order = [s.value for s in CaseStatus]
            out[name] = sorted(found, key=lambda r: order.index(r[0]) if r[0] in order else 99)
        else:
            out[name] = sorted(found, key=lambda r: -r[1])
    where = and_(True, *_conditions(f, skip="camera"))
    per_camera: dict[str, set[int]] = {}
    for seq, camera in session.execute(select(Case.seq, Case.camera_id).where(where)):
        if camera is not None:
            per_camera.setdefault(camera, set()).add(seq)
    for seq, camera in session.execute(
        select(Report.case_seq, Report.camera_id)
        .join(Case, Case.seq == Report.case_seq)
        .where(Report.camera_id.is_not(None), where)
    ):
        per_camera.setdefault(camera, set()).add(seq)
    out["camera"] = sorted(((c, len(s)) for c, s in per_camera.items()), key=lambda r: -r[1])
    return out


def queue_values(request: Request, session: Any) -> dict[str, Any]:
    f = filters_of(request)
    now = request.app.state.ctx.clock()
    cases = [case_out(c, now) for c in queue_cases(session, f)]
    latest = session.scalar(select(func.max(Change.seq))) or 0
    return {
        "filters": f,
        "cases": cases,
        "facets": facet_counts(session, f),
        "query": urlencode(f),
        "latest": latest,
        "types": [t.value for t in IncidentType],
        "statuses": [s.value for s in CaseStatus],
        "allowed_of": {s.value: [t.value for t in allowed(s)] for s in CaseStatus},
        "reasons": [r.value for r in RejectReason],
        "with_filter": lambda **kw: "/console?" + urlencode({**f, **kw}),
    }


@router.get("", response_class=HTMLResponse)
def queue_page(request: Request) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    with request.app.state.ctx.db.read() as session:
        values = queue_values(request, session)
    return render(request, "queue.html", user, page="queue", **values)


@router.get("/queue/fragment", response_class=HTMLResponse)
def queue_fragment(request: Request) -> Response:
    """The queue's table and counts, for the page to swap in when new cases arrive."""
    user = reader(request)
    with request.app.state.ctx.db.read() as session:
        values = queue_values(request, session)
    html = env.get_template("queue_body.html").render(
        t=Translator(lang_of(request)), user=user, csrf=user.csrf, codes=codes_of(request),
        **values,
    )  # fmt: skip
    return HTMLResponse(html)


@router.get("/changes")
def changes(request: Request) -> JSONResponse:
    """The newest change-feed position, for the queue to notice new cases."""
    reader(request)
    with request.app.state.ctx.db.read() as session:
        latest = session.scalar(select(func.max(Change.seq))) or 0
    return JSONResponse({"latest": latest})


def forbidden(request: Request, user: User) -> HTMLResponse:
    return render(request, "forbidden.html", user, 403, page="")


# -- a case ----------------------------------------------------------------------------


def nearby_open(session: Any, case: Case) -> list[tuple[Case, float | None]]:
    """Open cases of the same type a reviewer may mark this one a duplicate of: the same
    camera first, then by distance, then by time."""
    others = session.scalars(
        select(Case)
        .where(
            Case.type == case.type,
            Case.id != case.id,
            Case.status.in_([s.value for s in OPEN]),
        )
        .order_by(Case.seq.desc())
        .limit(200)
    )
    scored = []
    for other in others:
        distance = None
        if None not in (case.lat, case.lon, other.lat, other.lon):
            dy = (other.lat - case.lat) * 111_320
            dx = (other.lon - case.lon) * 111_320 * math.cos(math.radians(case.lat))
            distance = math.hypot(dx, dy)
        if distance is not None and distance > 500 and other.camera_id != case.camera_id:
            continue
        hours = abs((other.first_seen - case.first_seen).total_seconds()) / 3600
        scored.append((other.camera_id != case.camera_id, distance or 0, hours, other, distance))
    scored.sort(key=lambda s: s[:3])
    return [(s[3], s[4]) for s in scored[:20]]


def earlier_of_plate(session: Any, case: Case) -> list[Case]:
    """The cases of the same plate first seen in the PLATE_HISTORY before this one, newest
    first: the same vehicle parked before (a repeat offender)."""
    if case.plate is None:
        return []
    return list(
        session.scalars(
            select(Case)
            .where(
                Case.plate == case.plate,
                Case.id != case.id,
                Case.first_seen < case.first_seen,
                Case.first_seen >= case.first_seen - PLATE_HISTORY,
            )
            .order_by(Case.first_seen.desc())
        )
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: str) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    f = filters_of(request)
    with request.app.state.ctx.db.read() as session:
        try:
            case, _ = resolve(session, case_id[:128])
        except Problem:
            return render(request, "not_found.html", user, 404, page="", what=case_id)
        ids = [c.id for c in queue_cases(session, f)]
        history = list(
            session.scalars(select(Change).where(Change.case_seq == case.seq).order_by(Change.seq))
        )
        reports = list(case.reports)
        nearby = nearby_open(session, case)
        earlier = [(c.id, c.first_seen, c.status) for c in earlier_of_plate(session, case)]
        out = case_out(case, request.app.state.ctx.clock())
        suppressions = [s for s in list_rows(session) if s.case_id == case.id]
        picker = department_picker(session, case)
    pos = ids.index(case.id) if case.id in ids else None
    prev_id = ids[pos - 1] if pos is not None and pos > 0 else None
    next_id = ids[pos + 1] if pos is not None and pos + 1 < len(ids) else None
    if pos is None and ids:
        next_id = ids[0]
    kinds = {"first_seen": None, "confirmed": None, "cleared": None}
    for e in out.evidence:
        if e.kind in kinds and kinds[e.kind] is None:
            kinds[e.kind] = e
    extra = [e for e in out.evidence if e not in kinds.values() and e.kind != "dwell"]
    if kinds["cleared"] is None and out.cleared_at is None:
        del kinds["cleared"]  # still there: no empty "cleared" panel
    view = evidence_view(request, user)
    return render(
        request,
        "case.html",
        user,
        page="queue",
        case=out,
        history=history,
        reports=reports,
        nearby=nearby,
        earlier=earlier,
        plate_query=urlencode(
            {
                "plate": out.plate or "",
                "status": "all",
                "since": (out.first_seen - PLATE_HISTORY).astimezone(TZ).date().isoformat(),
                "until": out.first_seen.astimezone(TZ).date().isoformat(),
            }
        ),
        shots=kinds,
        extra_shots=extra,
        strips=strips_of(out, reports),
        prev_id=prev_id,
        next_id=next_id,
        position=(pos + 1 if pos is not None else None, len(ids)),
        query=urlencode(f),
        filters=f,
        allowed_to=[t.value for t in TRANSITIONS[CaseStatus(out.status)]],
        actions=ACTIONS,
        reasons=[r.value for r in RejectReason],
        suppressions=suppressions,
        schedule_text=lambda s: Schedule.model_validate(s).text() if s else None,
        picker=picker,
        view=view,
        shown=lambda e: shown_image(e, out.id, view),
        thumb_of=_thumb,
    )


def department_picker(session: Any, case: Case) -> dict[str, Any] | None:
    """The dispatch form's choice: every department of the routing table, the one the
    table routes this case to proposed (or the one it already has); None without a table."""
    table = routing.load(session)
    if table is None:
        return None
    routed = routed_department(session, case)
    return {
        "departments": sorted({r.department for r in table.routes}),
        "routed": routed,
        "chosen": case.department or routed,
        "urgencies": [u.value for u in Urgency],
    }


def _thumb(case: Case) -> str | None:
    """A case's thumbnail in lists and pickers: its first rendition."""
    return next((sha for e in case.evidence if (sha := public_sha(e))), None)


def _transition_body(user: User, action: str, form: dict[str, str]) -> TransitionIn:
    to, _ = ACTIONS[action]
    values: dict[str, Any] = {
        "to": to,
        # The person is the key's holder, named as an API caller names them (`actor`).
        "actor": user.principal.name,
        "note": form.get("note") or None,
        "expected_status": form.get("expected") or None,
    }
    if action == "duplicate":
        values["duplicate_of"] = form.get("duplicate_of") or None
    if action == "dispatch":
        values["department"] = form.get("department") or None
        values["urgency"] = form.get("urgency") or None
    if action == "reject":
        reason = form.get("reason") or "other"
        values["reason"] = reason
        if reason in ("permitted", "fixture"):
            options: dict[str, Any] = {}
            if form.get("expires"):
                options["expires_at"] = _day(form["expires"], end=True)
            if form.get("schedule", "").strip():
                options["schedule"] = Schedule.parse(form["schedule"])
            values["suppress"] = SuppressionOptions(**options) if options else None
    return TransitionIn(**values)


@router.post("/cases/{case_id}/box")
def correct_box(request: Request, case_id: str, posted: PostedForm) -> Response:
    """A reviewer's box for the case (training data): "x1, y1, x2, y2" in image pixels."""
    user = current_user(request)
    form = form_of(request, user, posted)
    t = Translator(lang_of(request))
    try:
        need(user, Scope.dispatch)
        parts = [p for p in form.get("bbox", "").replace(",", " ").split() if p]
        body = BoxIn(bbox=[float(p) for p in parts])
        with request.app.state.ctx.db.write() as session:
            case, _ = resolve(session, case_id[:128])
            set_reviewed_box(session, case, body.bbox, user.principal, user.principal.name)
            case_id = case.id
        message = "✓ " + t("box_saved")
    except Problem as exc:
        message = "✗ " + _explain(t, exc)
    except (ValidationError, ValueError) as exc:
        message = f"✗ {t('refused')}: {_first_error(exc)}"
    sessions.set_flash(request, user, message)
    return RedirectResponse(f"/console/cases/{case_id}?{urlencode(filters_of(request))}", 303)


@router.post("/cases/{case_id}/{action}")
def act(request: Request, case_id: str, action: str, posted: PostedForm) -> Response:
    user = current_user(request)
    form = form_of(request, user, posted)
    back = safe_next(form.get("next"), f"/console/cases/{case_id}")
    fetch = request.headers.get("x-requested-with") == "fetch"
    t = Translator(lang_of(request))
    if action not in ACTIONS:
        raise Problem(404, "No such action", kind="not-found")
    try:
        need(user, Scope.dispatch)
        body = _transition_body(user, action, form)
        with request.app.state.ctx.db.write() as session:
            case, _ = resolve(session, case_id[:128])
            transition(session, case, body, user.principal, request.app.state.ctx.settings)
            case_id = case.id
        request.app.state.ctx.metrics.transitions.labels(body.to.value).inc()
        message = t.message("done", case=case_id, to=t.status(body.to.value))
        ok = True
    except Problem as exc:
        message, ok = _explain(t, exc), False
    except (ValidationError, ValueError) as exc:
        message, ok = f"{t('refused')}: {_first_error(exc)}", False
    if fetch:
        return JSONResponse({"ok": ok, "message": message}, 200 if ok else 409)
    sessions.set_flash(request, user, ("✓ " if ok else "✗ ") + message)
    return RedirectResponse(
        back if ok else f"/console/cases/{case_id}?{urlencode(filters_of(request))}", 303
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
    return str(exc)


def _explain(t: Translator, exc: Problem) -> str:
    current = exc.extensions.get("current_status")
    if exc.kind == "invalid-transition" and current:
        allowed_to = exc.extensions.get("allowed") or []
        to = str(exc.detail).rsplit("'", 2)[-2] if exc.detail else "?"
        return t.message(
            "invalid-transition",
            current=t.status(str(current)),
            to=t.status(to),
            allowed="、".join(t.status(str(a)) for a in allowed_to) or t("none"),
        )
    if exc.kind == "status-conflict" and current:
        return t.message("status-conflict", current=t.status(str(current)))
    if exc.status_code == 403:
        return t("forbidden")
    return f"{t('refused')}: {exc.detail}"


# -- images ----------------------------------------------------------------------------


@router.get("/evidence/{sha256}")
def evidence(request: Request, sha256: str) -> Response:
    """A rendition to any reader; an original only to a `dispatch` session, never cached,
    and written to the audit log each time (`case`: the case it was shown on)."""
    user = reader(request)
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise Problem(404, "No such evidence", kind="not-found")
    ctx = request.app.state.ctx
    with ctx.db.read() as session:
        rendition = is_rendition(session, sha256)
        link = None if rendition else _link_of(session, sha256, request.query_params.get("case"))
    if rendition:
        return image_response(ctx, sha256, "private, max-age=31536000, immutable")
    need(user, Scope.dispatch)
    response = image_response(ctx, sha256, "private, no-store")  # each view is logged
    with ctx.db.write() as session:
        audit(session, user.principal, _actor(user), sha256, link, "image")
    return response


def _link_of(session: Any, sha256: str, case_id: str | None) -> str | None:
    """The case an original was shown on: the one named, if it links it, else the first."""
    query = (
        select(Case.id)
        .join(CaseEvidence, CaseEvidence.case_seq == Case.seq)
        .where(CaseEvidence.sha256 == sha256)
    )
    if case_id:
        named = session.scalar(query.where(Case.id == case_id[:128]))
        if named is not None:
            return named
    return session.scalar(query.order_by(Case.seq).limit(1))


def _actor(user: User) -> str:
    return f"console:{user.principal.name}"


@router.get("/cases/{case_id}/evidence/{sha256}/annotated")
def annotated(request: Request, case_id: str, sha256: str) -> Response:
    """Follows the session's scope: on the original for `dispatch` (audited) unless it asks
    `?view=deidentified`, on the rendition for everyone else."""
    user = reader(request)
    ctx = request.app.state.ctx
    with ctx.db.read() as session:
        rendition = is_rendition(session, sha256[:64])
    view: EvidenceView = "deidentified" if rendition else evidence_view(request, user)
    response = annotated_response(ctx, case_id[:128], sha256[:64], view)
    if view == "original":
        with ctx.db.write() as session:
            case, _ = resolve(session, case_id[:128])
            audit(session, user.principal, _actor(user), sha256[:64], case.id, "annotated")
    return response


@router.get("/cameras/{camera_id}/thumbnail")
def thumbnail(request: Request, camera_id: str) -> Response:
    reader(request)
    return thumbnail_response(request.app.state.ctx, camera_id[:128])


# -- cameras, suppressions, statistics -------------------------------------------------


@router.get("/cameras", response_class=HTMLResponse)
def cameras_page(request: Request) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    with request.app.state.ctx.db.read() as session:
        items = camera_list(session, request.app.state.ctx.clock())
    return render(request, "cameras.html", user, page="cameras", cameras=items)


@router.get("/suppressions", response_class=HTMLResponse)
def suppressions_page(request: Request) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    with request.app.state.ctx.db.read() as session:
        rows = list_rows(session)
    return render(
        request,
        "suppressions.html",
        user,
        page="suppressions",
        rows=rows,
        schedule_text=lambda s: Schedule.model_validate(s).text() if s else "",
    )


@router.post("/suppressions/{suppression_id}")
def edit_suppression(request: Request, suppression_id: str, posted: PostedForm) -> Response:
    user = current_user(request)
    form = form_of(request, user, posted)
    t = Translator(lang_of(request))
    need(user, Scope.dispatch)
    ctx = request.app.state.ctx
    try:
        if form.get("op") == "delete":
            with ctx.db.write() as session:
                session.delete(get_row(session, suppression_id[:40]))
            message = f"✓ {t('deleted')} {suppression_id}"
        else:
            patch: dict[str, Any] = {"note": form.get("note") or None}
            patch["expires_at"] = _day(form.get("expires"), end=True)
            text = form.get("schedule", "").strip()
            patch["schedule"] = Schedule.parse(text) if text else None
            if form.get("op") in ("enable", "disable"):
                patch = {"active": form["op"] == "enable"}
            update(ctx, suppression_id[:40], SuppressionPatch(**patch))
            message = f"✓ {t('saved')} {suppression_id}"
    except Problem as exc:
        message = f"✗ {exc.detail}"
    except (ValidationError, ValueError) as exc:
        message = f"✗ {t('refused')}: {_first_error(exc)}"
    sessions.set_flash(request, user, message)
    return RedirectResponse("/console/suppressions", 303)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    """The audit log of originals shown (`GET /v1/audit/original-views`), for admins."""
    user = reader(request)
    if not user.may(Scope.admin):
        raise _Forbidden(user)
    case_id = request.query_params.get("case") or None
    with request.app.state.ctx.db.read() as session:
        views = original_views(session, case_id[:40] if case_id else None, limit=500)
    return render(request, "audit.html", user, page="audit", views=views)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    period = stats.period_of(request.query_params, TZ, request.app.state.ctx.clock())
    with request.app.state.ctx.db.read() as session:
        table = stats.compute(session, period, TZ)
    t = Translator(lang_of(request))
    return render(
        request,
        "stats.html",
        user,
        page="stats",
        period=period,
        table=table,
        charts=stats.charts(table, period, t),
        query=urlencode(period.query()),
        duration=stats.duration,
        reasons=stats.REASONS,
    )


@router.get("/stats.csv")
def stats_csv(request: Request) -> Response:
    reader(request)
    period = stats.period_of(request.query_params, TZ, request.app.state.ctx.clock())
    with request.app.state.ctx.db.read() as session:
        table = stats.compute(session, period, TZ)
    name = f"streetwatch-stats-{period.group}-{period.since}-{period.until}.csv"
    return Response(
        stats.to_csv(table, period),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- sign-in, sign-out, language -------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    t = Translator(lang_of(request))
    # `ended`: the queue's tab found its session gone; the message is ours, not the URL's.
    ended = request.query_params.get("ended") is not None
    return login_page(
        request, t("expired") if ended else None, next_=request.query_params.get("next")
    )


def login_page(
    request: Request,
    error: str | None = None,
    status: int = 200,
    next_: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The sign-in form (messages are ours only: nothing from the query is shown)."""
    import secrets

    token = request.cookies.get(sessions.LOGIN_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, status, page="login", login_csrf=token, error=error,
        next=safe_next(next_, ""),
    )  # fmt: skip
    response.set_cookie(
        sessions.LOGIN_COOKIE, token, max_age=3600, **sessions.cookie_options(request)
    )
    response.headers.update(headers or {})
    return response


@router.post("/login")
def login(request: Request, form: PostedForm) -> Response:
    """A wrong key is refused from a read; only a valid one takes the write lock, for its
    session. Attempts are counted per client address first (`api.server.console.throttle`)."""
    t = Translator(lang_of(request))
    next_ = form.get("next")
    client = request.client.host if request.client else ""
    wait = request.app.state.sign_in_throttle.take(client)
    if wait:
        seconds = math.ceil(wait)
        return login_page(
            request,
            t.message("too_many", seconds=str(seconds)),
            429,
            next_,
            headers={"Retry-After": str(seconds)},
        )
    token = request.cookies.get(sessions.LOGIN_COOKIE, "")
    given = form.get("csrf")
    if not token or given is None:
        return login_page(request, t("expired"), 403, next_)
    check_csrf(request, token, given)
    key = form.get("key")
    if key is None or not key.strip() or len(key) > 200:
        return login_page(request, t("bad_key"), 401, next_)
    db = request.app.state.ctx.db
    with db.read() as session:
        record = sessions.valid_key(session, key.strip())
    if record is None:
        return login_page(request, t("bad_key"), 401, next_)
    if not sessions.may_sign_in(record):
        scopes = ", ".join(sorted(record.scopes)) or "—"
        return login_page(request, t.message("no_console_scope", scopes=scopes), 403, next_)
    with db.write() as session:
        made = sessions.sign_in(session, record.id)
    if made is None:  # revoked between the read and the write
        return login_page(request, t("bad_key"), 401, next_)
    session_token, _ = made
    request.app.state.sign_in_throttle.give_back(client)
    response = RedirectResponse(safe_next(next_), 303)
    response.set_cookie(
        sessions.COOKIE,
        session_token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        **sessions.cookie_options(request),
    )
    response.delete_cookie(sessions.LOGIN_COOKIE, path=sessions.PATH)
    return response


@router.post("/logout")
def logout(request: Request, form: PostedForm) -> Response:
    try:
        user = current_user(request)
    except SignInRequired:
        return RedirectResponse("/console/login", 303)
    form_of(request, user, form)
    sessions.end(request, user.token_hash)
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response


@router.post("/lang")
def set_lang(request: Request, form: PostedForm) -> Response:
    given = form.get("csrf")
    try:
        expected = current_user(request).csrf
    except SignInRequired:
        expected = request.cookies.get(sessions.LOGIN_COOKIE, "")
    check_csrf(request, expected, given)
    lang = form.get("lang")
    lang = lang if lang in LANGS else DEFAULT
    back = safe_next(form.get("next") or "", "/console")
    response = RedirectResponse(back, 303)
    response.set_cookie(
        sessions.LANG_COOKIE, str(lang), max_age=365 * 86400, **sessions.cookie_options(request)
    )
    return response
