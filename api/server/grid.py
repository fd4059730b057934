"""The city's grid (单元网格): cells as GeoJSON polygons with codes, and which cell a point
is in.

A grid is imported whole (`streetwatch desk grid`, `PUT /v1/desk/grid`) and replaces the
previous one. Cells are validated before anything is stored: a GeoJSON FeatureCollection
of Polygon/MultiPolygon features, each with a unique `code` property and an optional
`parent` (the area the cell belongs to, which a routing rule may name instead), rings
closed and in WGS 84, and no two cells overlapping (sharing an edge is fine).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api.contract import storable
from api.server.clock import now_in
from api.server.problems import Problem
from api.server.tables import GridCell

Ring = np.ndarray  # (N, 2) float64 lon, lat; closed (first == last)
_EPS = 1e-12


@dataclass(frozen=True)
class Cell:
    code: str
    parent: str | None
    name: str | None
    polygons: list[list[Ring]]  # each polygon: outer ring, then holes

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        pts = np.concatenate([p[0] for p in self.polygons])
        return (
            float(pts[:, 0].min()),
            float(pts[:, 1].min()),
            float(pts[:, 0].max()),
            float(pts[:, 1].max()),
        )

    def geometry(self) -> dict[str, Any]:
        coords = [[ring.tolist() for ring in poly] for poly in self.polygons]
        if len(coords) == 1:
            return {"type": "Polygon", "coordinates": coords[0]}
        return {"type": "MultiPolygon", "coordinates": coords}


def _invalid(detail: str, **extra: Any) -> Problem:
    return Problem(422, f"Invalid grid: {detail}", kind="invalid-grid", **extra)


def _ring(raw: Any, where: str) -> Ring:
    try:
        ring = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise _invalid(f"{where} is not a list of [lon, lat] positions") from None
    if ring.ndim != 2 or ring.shape[1] < 2 or ring.shape[0] < 4:
        raise _invalid(f"{where} needs at least 4 [lon, lat] positions")
    ring = ring[:, :2]
    if not np.isfinite(ring).all() or (np.abs(ring[:, 0]) > 180).any():
        raise _invalid(f"{where} has a position outside WGS 84")
    if (np.abs(ring[:, 1]) > 90).any():
        raise _invalid(f"{where} has a position outside WGS 84")
    if not np.array_equal(ring[0], ring[-1]):
        raise _invalid(f"{where} is not closed (its first and last positions differ)")
    if abs(_area(ring)) < _EPS:
        raise _invalid(f"{where} encloses no area")
    return ring


def _area(ring: Ring) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])) / 2


def _text(value: Any, where: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise _invalid(f"{where} must be a non-empty string")
    text = str(value).strip()
    if len(text) > 64:
        raise _invalid(f"{where} is longer than 64 characters")
    try:
        return storable(text)
    except ValueError as exc:
        raise _invalid(f"{where} {exc}") from None


def parse(document: Any) -> list[Cell]:
    """Cells from a GeoJSON FeatureCollection; every fault is a 422 naming the feature."""
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise _invalid("the document must be a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise _invalid("the FeatureCollection has no features")
    cells: list[Cell] = []
    seen: set[str] = set()
    for i, feature in enumerate(features):
        where = f"features[{i}]"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise _invalid(f"{where} is not a GeoJSON Feature")
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise _invalid(f"{where}.properties must be an object")
        code = _text(props.get("code"), f"{where}.properties.code", required=True)
        assert code is not None
        if code in seen:
            raise _invalid(f"{where}: the code '{code}' is used twice", code=code)
        seen.add(code)
        parent = _text(props.get("parent"), f"{where}.properties.parent", required=False)
        name = props.get("name")
        name = _text(name, f"{where}.properties.name", required=False) if name else None
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict):
            raise _invalid(f"{where} ({code}) has no geometry")
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Polygon":
            raw_polys = [coords]
        elif kind == "MultiPolygon" and isinstance(coords, list):
            raw_polys = coords
        else:
            raise _invalid(f"{where} ({code}) must be a Polygon or MultiPolygon, not {kind!r}")
        polygons = []
        for j, poly in enumerate(raw_polys):
            if not isinstance(poly, list) or not poly:
                raise _invalid(f"{where} ({code}) polygon {j} has no rings")
            polygons.append([_ring(r, f"{where} ({code}) ring {k}") for k, r in enumerate(poly)])
        cells.append(Cell(code, parent, name, polygons))
    _check_overlaps(cells)
    return cells


# -- geometry ---------------------------------------------------------------------------


def _inside(ring: Ring, points: np.ndarray) -> np.ndarray:
    """Even-odd rule for (M, 2) points against one closed ring, vectorised over both."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = ring[:-1, 0], ring[:-1, 1]
    x2, y2 = ring[1:, 0], ring[1:, 1]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (crosses & (x < at_x)).sum(axis=1) % 2 == 1


def _on_boundary(ring: Ring, points: np.ndarray) -> np.ndarray:
    """Points lying on an edge of the ring (within a tiny tolerance)."""
    a, b = ring[:-1][None], ring[1:][None]
    p = points[:, None]
    ab = b - a
    length2 = (ab**2).sum(-1)
    t = np.clip(((p - a) * ab).sum(-1) / np.where(length2 == 0, 1, length2), 0, 1)
    nearest = a + t[..., None] * ab
    return (((p - nearest) ** 2).sum(-1) < 1e-18).any(axis=1)


def _polygon_contains(poly: list[Ring], points: np.ndarray, strict: bool) -> np.ndarray:
    inside = _inside(poly[0], points)
    for hole in poly[1:]:
        inside &= ~_inside(hole, points)
    if strict:
        for ring in poly:
            inside &= ~_on_boundary(ring, points)
    return inside


def contains(cell: Cell, lon: float, lat: float) -> bool:
    point = np.array([[lon, lat]])
    return any(
        bool(_polygon_contains(p, point, strict=False)[0] or _on_boundary(p[0], point)[0])
        for p in cell.polygons
    )


def _edges_cross(a: Ring, b: Ring) -> bool:
    """Whether an edge of `a` properly crosses an edge of `b` (touching is not crossing)."""
    p, r = a[:-1][:, None], (a[1:] - a[:-1])[:, None]
    q, s = b[:-1][None], (b[1:] - b[:-1])[None]

    def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    denom = cross(r, s)
    qp = q - p
    with np.errstate(divide="ignore", invalid="ignore"):
        t = cross(qp, s) / denom
        u = cross(qp, r) / denom
    proper = (np.abs(denom) > _EPS) & (t > 1e-9) & (t < 1 - 1e-9) & (u > 1e-9) & (u < 1 - 1e-9)
    return bool(proper.any())


def _probe_points(poly: list[Ring]) -> np.ndarray:
    """Vertices, edge midpoints and the centroid of a polygon's outer ring: if two cells
    share interior and no edges cross, one of these lies strictly inside the other."""
    outer = poly[0]
    mids = (outer[:-1] + outer[1:]) / 2
    return np.concatenate([outer[:-1], mids, outer[:-1].mean(axis=0, keepdims=True)])


def _polygons_overlap(a: list[Ring], b: list[Ring]) -> bool:
    if _edges_cross(a[0], b[0]):
        return True
    if _polygon_contains(b, _probe_points(a), strict=True).any():
        return True
    return bool(_polygon_contains(a, _probe_points(b), strict=True).any())


def _check_overlaps(cells: list[Cell]) -> None:
    bounds = np.array([c.bounds for c in cells])
    for i, j in combinations(range(len(cells)), 2):
        bi, bj = bounds[i], bounds[j]
        if bi[0] >= bj[2] or bj[0] >= bi[2] or bi[1] >= bj[3] or bj[1] >= bi[3]:
            continue
        a, b = cells[i], cells[j]
        if any(_polygons_overlap(pa, pb) for pa in a.polygons for pb in b.polygons):
            raise _invalid(f"the cells '{a.code}' and '{b.code}' overlap", cells=[a.code, b.code])


# -- storage ----------------------------------------------------------------------------


def _cell_of(row: GridCell) -> Cell:
    geometry = row.geometry
    raw = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    polygons = [[np.asarray(r, dtype=np.float64) for r in poly] for poly in raw]
    return Cell(row.code, row.parent, row.name, polygons)


def load(session: Session) -> list[Cell]:
    return [_cell_of(r) for r in session.scalars(select(GridCell).order_by(GridCell.code))]


def store(session: Session, cells: list[Cell], by: str) -> None:
    """Replace the stored grid with `cells` (in the caller's transaction)."""
    session.execute(delete(GridCell))
    now = now_in(session)
    for c in cells:
        min_lon, min_lat, max_lon, max_lat = c.bounds
        session.add(
            GridCell(
                code=c.code,
                parent=c.parent,
                name=c.name,
                geometry=c.geometry(),
                min_lon=min_lon,
                min_lat=min_lat,
                max_lon=max_lon,
                max_lat=max_lat,
                updated_at=now,
                updated_by=by,
            )
        )
    session.flush()


def locate(session: Session, lat: float, lon: float) -> str | None:
    """The code of the cell a point lies in (the first by code on a shared edge), if any."""
    rows = session.scalars(
        select(GridCell)
        .where(
            GridCell.min_lon <= lon,
            GridCell.max_lon >= lon,
            GridCell.min_lat <= lat,
            GridCell.max_lat >= lat,
        )
        .order_by(GridCell.code)
    )
    return next((r.code for r in rows if contains(_cell_of(r), lon, lat)), None)
