"""The map's drawing: grid cells, cameras and cases as inline SVG in Web Mercator, and the
city's own tiles under them when a tile URL template is configured.

Everything is projected to Web Mercator "world" units (0..1 across the world, y down), the
projection slippy-map tiles use, so a tile (z, x, y) covers exactly [x, x+1] / 2**z by
[y, y+1] / 2**z of the world and lies under the SVG without any resampling. The view is the
bounds of what is drawn, padded; the zoom is the one whose 256-pixel tiles come closest to
the SVG's own pixel scale, lowered until at most `MAX_TILES` tiles cover the view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

WIDTH = 1000  # the SVG's own pixel width; the browser scales it to the page
MIN_HEIGHT, MAX_HEIGHT = 320, 760
TILE_PX = 256
MAX_TILES = 64
MAX_ZOOM = 19
PAD = 0.08  # of the view's extent, on every side
MIN_SPAN = 0.0005 / 360  # about 55 m: a single point still gets a street's worth of view


def world(lat: np.ndarray | float, lon: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 to Web Mercator world units (x east, y south, both 0..1)."""
    lat_r = np.radians(np.clip(lat, -85.0511, 85.0511))
    x = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0
    y = (1.0 - np.log(np.tan(lat_r) + 1.0 / np.cos(lat_r)) / math.pi) / 2.0
    return x, y


@dataclass(frozen=True)
class View:
    """The part of the world the SVG shows: origin (x0, y0), world units per pixel."""

    x0: float
    y0: float
    scale: float  # pixels per world unit
    width: int
    height: int

    def px(self, lat: np.ndarray | float, lon: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        x, y = world(lat, lon)
        return (x - self.x0) * self.scale, (y - self.y0) * self.scale


def view_of(points: Sequence[tuple[float, float]]) -> View | None:
    """The view that shows every (lat, lon) point, or None when there is nothing to show."""
    if not points:
        return None
    lat, lon = np.asarray(points, dtype=np.float64).T
    x, y = world(lat, lon)
    x_min, x_max, y_min, y_max = x.min(), x.max(), y.min(), y.max()
    span_x, span_y = max(x_max - x_min, MIN_SPAN), max(y_max - y_min, MIN_SPAN)
    cx, cy = (x_min + x_max) / 2, (y_min + y_max) / 2
    span_x, span_y = span_x * (1 + 2 * PAD), span_y * (1 + 2 * PAD)
    scale = WIDTH / span_x
    height = span_y * scale
    if height > MAX_HEIGHT:  # tall: fit the height, widen the view around the centre
        scale = MAX_HEIGHT / span_y
        height = MAX_HEIGHT
    height = max(height, MIN_HEIGHT)
    return View(cx - WIDTH / scale / 2, cy - height / scale / 2, scale, WIDTH, round(height))


@dataclass(frozen=True)
class Tile:
    url: str
    x: float
    y: float
    size: float  # pixels, square


def tiles(view: View, template: str) -> list[Tile]:
    """The tiles of `template` ({z}, {x}, {y}) that cover the view."""
    zoom = int(np.clip(round(math.log2(view.scale / TILE_PX)), 0, MAX_ZOOM))
    while True:
        n = 2**zoom
        x_lo, x_hi = math.floor(view.x0 * n), math.floor((view.x0 + view.width / view.scale) * n)
        y_lo, y_hi = math.floor(view.y0 * n), math.floor((view.y0 + view.height / view.scale) * n)
        count = (x_hi - x_lo + 1) * (y_hi - y_lo + 1)
        if count <= MAX_TILES or zoom == 0:
            break
        zoom -= 1
    size = view.scale / n
    out = []
    for ty in range(max(y_lo, 0), min(y_hi, n - 1) + 1):
        for tx in range(max(x_lo, 0), min(x_hi, n - 1) + 1):
            url = template.replace("{z}", str(zoom)).replace("{x}", str(tx))
            url = url.replace("{y}", str(ty))
            out.append(
                Tile(url, (tx / n - view.x0) * view.scale, (ty / n - view.y0) * view.scale, size)
            )
    return out


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Degrees clockwise from north, from the first point towards the second."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def path_of(view: View, rings: Iterable[np.ndarray]) -> str:
    """An SVG path for rings of (lon, lat) positions (holes drawn even-odd)."""
    parts = []
    for ring in rings:
        xs, ys = view.px(ring[:, 1], ring[:, 0])
        points = " L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(f"M{points} Z")
    return " ".join(parts)


def wedge(x: float, y: float, heading: float, length: float = 46, half_angle: float = 25) -> str:
    """A view cone from (x, y) towards `heading` (degrees from north) as an SVG path."""
    points = []
    for a in (heading - half_angle, heading + half_angle):
        r = math.radians(a)
        points.append((x + length * math.sin(r), y - length * math.cos(r)))
    (ax, ay), (bx, by) = points
    return f"M{x:.1f},{y:.1f} L{ax:.1f},{ay:.1f} A{length},{length} 0 0 1 {bx:.1f},{by:.1f} Z"


def text(x: float, y: float, value: object, cls: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">'
        f"{escape(str(value))}</text>"
    )


def svg(view: View, body: list[str], label: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {view.width} {view.height}" '
        f'width="{view.width}" height="{view.height}" role="img" aria-label="{escape(label)}" '
        'id="map" class="map">'
    )
    return Markup(head + "".join(body) + "</svg>")
