"""The map page (`/console/map`): the city's grid cells, its cameras and the open cases, as
one server-drawn SVG (`mapsvg`), with the queue's filters.

A case stands where its object is (a calibrated camera's ground point, or an Open311 pin),
else at its camera, outlined dashed; dots that would cover one another are fanned out. A
camera stands where its fleet definition or its latest report puts it; its view direction
is known when it is calibrated: from the camera towards the centre of its calibration
points (a fleet camera), else towards the mean of the object positions its reports carried.
Cases are coloured by type, faded by age, overdue ones ringed in red; each links to its
case page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy import and_, select

from api.contract import IncidentType
from api.server import grid
from api.server.console import mapsvg
from api.server.console.i18n import Translator
from api.server.console.pages import (
    OPEN,
    QUEUE_LIMIT,
    _conditions,
    facet_counts,
    lang_of,
    reader,
    render,
    router,
)
from api.server.schemas import CaseOut
from api.server.serialize import case_out
from api.server.tables import Case, FleetCamera, Report

MAP_FILTERS = ("status", "type", "camera", "grid", "since", "until")
COLOURS = {"illegal_parking": "#1565c0", "street_stall": "#ef6c00", "garbage": "#6d4c41"}
# Age bands: a fresh case is drawn solid, an old one faded (the legend names the bands).
AGES = ((timedelta(hours=1), 1.0, "age_hour"), (timedelta(days=1), 0.7, "age_day"))
OLD_OPACITY = 0.4
SPREAD_PX = 20  # dots closer than this are fanned out
FAN = (-30, -90, -150, 30, 150, 90)  # degrees (0: east, 90: south); below, the label, last


@dataclass(frozen=True)
class CameraPlace:
    camera_id: str
    lat: float
    lon: float
    heading: float | None  # degrees from north; None: not calibrated


def _mean(points: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)


def _fleet_place(camera_id: str, definition: dict[str, Any]) -> CameraPlace | None:
    location = definition.get("location") or {}
    lat, lon = location.get("lat"), location.get("lon")
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    points = (definition.get("calibration") or {}).get("points") or []
    where = [
        (p["lat"], p["lon"])
        for p in points
        if isinstance(p, dict) and isinstance(p.get("lat"), int | float)
        and isinstance(p.get("lon"), int | float)
    ]  # fmt: skip
    heading = mapsvg.bearing(lat, lon, *_mean(where)) if where else None
    return CameraPlace(camera_id, float(lat), float(lon), heading)


def camera_places(session: Any) -> list[CameraPlace]:
    """Every camera with a known place: fleet definitions first, then the latest report."""
    places: dict[str, CameraPlace] = {}
    for row in session.scalars(select(FleetCamera)):
        if isinstance(row.definition, dict) and (p := _fleet_place(row.camera_id, row.definition)):
            places[row.camera_id] = p
    seen: dict[str, tuple[float, float]] = {}
    positions: dict[str, list[tuple[float, float]]] = {}
    rows = session.execute(
        select(Report.camera_id, Report.lat, Report.lon, Report.position_lat, Report.position_lon)
        .where(Report.camera_id.is_not(None), Report.lat.is_not(None), Report.lon.is_not(None))
        .order_by(Report.received_at.desc())
        .limit(20_000)
    )
    for camera, lat, lon, p_lat, p_lon in rows:
        seen.setdefault(camera, (lat, lon))
        if p_lat is not None and p_lon is not None and len(positions.get(camera, [])) < 100:
            positions.setdefault(camera, []).append((p_lat, p_lon))
    for camera, (lat, lon) in seen.items():
        if camera in places:
            continue
        mine = positions.get(camera)
        heading = mapsvg.bearing(lat, lon, *_mean(mine)) if mine else None
        places[camera] = CameraPlace(camera, lat, lon, heading)
    return sorted(places.values(), key=lambda p: p.camera_id)


def place_of(case: CaseOut) -> tuple[float, float] | None:
    if case.position is not None:
        return case.position.lat, case.position.lon
    if case.location.lat is not None and case.location.lon is not None:
        return case.location.lat, case.location.lon
    return None


def _opacity(age: timedelta) -> float:
    return next((o for limit, o, _ in AGES if age < limit), OLD_OPACITY)


def _free(at: tuple[float, ...], taken: list[tuple[float, ...]]) -> tuple[float, float]:
    """`at`, or the first place on rings around it that no dot or camera covers."""
    x, y = at
    for k in range(60):
        ring, angle = 1 + (k - 1) // 6, math.radians(FAN[(k - 1) % 6])
        step = (SPREAD_PX + 2) * ring  # a little over the spacing: rounding never refuses it
        cx, cy = (x, y) if k == 0 else (x + step * math.cos(angle), y + step * math.sin(angle))
        if all(math.hypot(cx - tx, cy - ty) >= SPREAD_PX for tx, ty in taken):
            return cx, cy
    return x, y


def draw(
    cells: list[grid.Cell],
    cameras: list[CameraPlace],
    cases: list[CaseOut],
    now: datetime,
    t: Translator,
    query: str,
    tile_url: str | None,
) -> tuple[Markup | None, int]:
    """The SVG, and how many cases had no place to be drawn at."""
    placed = [(c, p) for c in cases if (p := place_of(c)) is not None]
    points = [(float(r[i, 1]), float(r[i, 0])) for c in cells for poly in c.polygons
              for r in poly[:1] for i in range(len(r))]  # fmt: skip
    points += [(c.lat, c.lon) for c in cameras] + [p for _, p in placed]
    view = mapsvg.view_of(points)
    if view is None:
        return None, len(cases) - len(placed)
    body: list[str] = []
    if tile_url:
        body.append('<g class="tiles">')
        for tile in mapsvg.tiles(view, tile_url):
            body.append(
                f'<image href="{Markup.escape(tile.url)}" x="{tile.x:.1f}" y="{tile.y:.1f}" '
                f'width="{tile.size:.1f}" height="{tile.size:.1f}" preserveAspectRatio="none"/>'
            )
        body.append("</g>")
    body.append('<g class="cells">')
    for cell in cells:
        d = " ".join(mapsvg.path_of(view, poly) for poly in cell.polygons)
        body.append(
            f'<a href="/console/map?{Markup.escape(urlencode({"grid": cell.code}))}">'
            f'<path d="{d}" class="cell" data-cell="{Markup.escape(cell.code)}">'
            f"<title>{Markup.escape(cell.code)} {Markup.escape(cell.name or '')}</title></path></a>"
        )
    for cell in cells:  # labels above every cell's outline, at the middle of its bounds
        min_lon, min_lat, max_lon, max_lat = cell.bounds
        x, y = view.px((min_lat + max_lat) / 2, (min_lon + max_lon) / 2)
        body.append(mapsvg.text(float(x), float(y), cell.code, "cell-code"))
        if cell.name:
            body.append(mapsvg.text(float(x), float(y) + 15, cell.name, "cell-name"))
    body.append('</g><g class="cameras">')
    for cam in cameras:
        x, y = view.px(cam.lat, cam.lon)
        x, y = float(x), float(y)
        calibrated = "calibrated" if cam.heading is not None else "uncalibrated"
        body.append(f'<g class="camera {calibrated}" data-camera="{Markup.escape(cam.camera_id)}"')
        if cam.heading is not None:
            body.append(f' data-heading="{cam.heading:.0f}">')
            body.append(f'<path d="{mapsvg.wedge(x, y, cam.heading)}" class="view"/>')
        else:
            body.append(">")
        body.append(
            f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12" rx="2" class="cam">'
            f"<title>{Markup.escape(cam.camera_id)}</title></rect>"
        )
        body.append(mapsvg.text(x, y + 20, cam.camera_id, "cam-label"))
        body.append("</g>")
    body.append('</g><g class="cases">')
    # Dots that would cover one another (or a camera: a case its camera did not place stands
    # at the camera) are fanned out around that point, so each stays visible and clickable.
    taken = [tuple(float(v) for v in view.px(cam.lat, cam.lon)) for cam in cameras]
    # Older first, so the newest sit on top; overdue ones last of all.
    for case, (lat, lon) in sorted(placed, key=lambda cp: (cp[0].overdue, cp[0].created_at)):
        x, y = _free(tuple(float(v) for v in view.px(lat, lon)), taken)
        taken.append((x, y))
        age = now - case.created_at
        colour = COLOURS.get(case.type.value, "#455a64")
        title = f"{t.type(case.type.value)} · {t.status(case.status.value)} · {case.id}"
        if case.department:
            title += f" · {case.department}"
        if case.overdue:
            title += f" · {t('overdue')}"
        cls = "case overdue" if case.overdue else "case"
        if case.status not in OPEN:  # shown when the filter asks for them: hollow
            cls += " done"
        if case.position is None:
            cls += " at-camera"
        href = f"/console/cases/{Markup.escape(case.id)}?{Markup.escape(query)}"
        body.append(
            f'<a href="{href}" class="{cls}" '
            f'data-case="{Markup.escape(case.id)}" data-type="{case.type.value}">'
        )
        if case.overdue:
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="14" class="overdue-ring"/>')
        paint = (
            f'fill="#fff" stroke="{colour}" stroke-width="3"'
            if case.status not in OPEN
            else f'fill="{colour}" fill-opacity="{_opacity(age):.2f}"'
        )
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" {paint} class="dot">'
            f"<title>{Markup.escape(title)}</title></circle>"
        )
        if case.overdue:
            body.append(mapsvg.text(x, y + 4, "!", "overdue-mark"))
        body.append("</a>")
    body.append("</g>")
    return mapsvg.svg(view, body, t("map")), len(cases) - len(placed)


def map_filters(request: Request) -> dict[str, str]:
    q = request.query_params
    out = {k: q[k][:128] for k in MAP_FILTERS if q.get(k)}
    out.setdefault("status", "open")
    return out


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request) -> Response:
    user = reader(request)  # a key without the scope: the app's _Forbidden handler answers
    ctx = request.app.state.ctx
    f = map_filters(request)
    now = ctx.clock()
    with ctx.db.read() as session:
        rows = session.scalars(
            select(Case)
            .where(and_(True, *_conditions(f)))
            .order_by(Case.seq.desc())
            .limit(QUEUE_LIMIT)
        )
        cases = [case_out(c, now) for c in rows]
        cells = grid.load(session)
        cameras = camera_places(session)
        facets = facet_counts(session, f)
    t = Translator(lang_of(request))
    query = urlencode({k: v for k, v in f.items() if k != "status" or v != "open"})
    picture, unplaced = draw(cells, cameras, cases, now, t, query, ctx.settings.map_tile_url)
    return render(
        request,
        "map.html",
        user,
        page="map",
        filters=f,
        facets=facets,
        picture=picture,
        unplaced=unplaced,
        cases=cases,
        overdue=sum(c.overdue for c in cases),
        colours=COLOURS,
        ages=[(name, opacity) for _, opacity, name in AGES] + [("age_older", OLD_OPACITY)],
        types=[t.value for t in IncidentType],
        with_filter=lambda **kw: "/console/map?" + urlencode({**f, **kw}),
    )
