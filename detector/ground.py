"""Ground calibration: a camera's image points mapped to the map, through a homography.

Four or more image points of the street surface with their latitude and longitude fix the
plane's projection. Lat/lon are taken to a local east/north plane in metres around their
centroid (an equirectangular approximation: exact to millimetres over a street's extent), the
homography is fitted there, and an incident's ground point (the bottom centre of its box) is
mapped back to lat/lon. That is the object's own place, which merging across cameras, routing
and the map need; the camera's own location says nothing about where in its view a thing is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

EARTH_RADIUS_M = 6_371_008.8
MIN_POINTS = 4
MIN_SPREAD = 0.05  # of the largest extent: points closer to a line than this are degenerate


class CalibrationError(ValueError):
    """Points that cannot fix a ground plane; the message says why."""


def _spread(points: np.ndarray) -> float:
    """How far the points are from lying on one line, relative to their extent (0: a line)."""
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return float(singular[-1] / singular[0]) if singular[0] > 0 else 0.0


class GroundCalibration:
    def __init__(
        self, image_points: Sequence[Sequence[float]], latlon: Sequence[Sequence[float]]
    ) -> None:
        image = np.asarray(image_points, np.float64)
        world = np.asarray(latlon, np.float64)
        if len(image) < MIN_POINTS or len(image) != len(world):
            raise CalibrationError(f"needs at least {MIN_POINTS} points, each with lat/lon")
        for what, pts in (("image points", image), ("lat/lon points", world)):
            if len({tuple(p) for p in pts.tolist()}) < len(pts):
                raise CalibrationError(f"two {what} are the same")
            if _spread(pts) < MIN_SPREAD:
                raise CalibrationError(f"the {what} lie (almost) on one line")
        self.origin = world.mean(axis=0)
        self._m_per_deg = (
            math.radians(1) * EARTH_RADIUS_M,
            math.radians(1) * EARTH_RADIUS_M * math.cos(math.radians(self.origin[0])),
        )
        local = self._to_local(world)
        homography, _ = cv2.findHomography(image, local, 0)
        if homography is None or abs(np.linalg.det(homography)) < 1e-12:
            raise CalibrationError("the points do not fix a ground plane")
        self.homography = homography
        residual = np.hypot(*(self._project(image) - local).T).max()
        if len(image) > MIN_POINTS and residual > 5.0:
            raise CalibrationError(
                f"the points disagree with one ground plane by up to {residual:.1f} m: "
                "check that every point lies on the street surface"
            )

    def _to_local(self, latlon: np.ndarray) -> np.ndarray:
        d = latlon - self.origin
        return np.stack([d[:, 1] * self._m_per_deg[1], d[:, 0] * self._m_per_deg[0]], axis=1)

    def _project(self, image: np.ndarray) -> np.ndarray:
        return cv2.perspectiveTransform(image.reshape(-1, 1, 2), self.homography).reshape(-1, 2)

    def to_latlon(self, image_points: np.ndarray) -> np.ndarray:
        """N x 2 image points (x, y) to N x 2 (lat, lon)."""
        local = self._project(np.asarray(image_points, np.float64))
        lat = self.origin[0] + local[:, 1] / self._m_per_deg[0]
        lon = self.origin[1] + local[:, 0] / self._m_per_deg[1]
        return np.stack([lat, lon], axis=1)

    def ground_position(self, box: np.ndarray) -> tuple[float, float]:
        """(lat, lon) of a box's ground point: the bottom centre, where it stands."""
        point = np.array([[(box[0] + box[2]) * 0.5, box[3]]], np.float64)
        lat, lon = self.to_latlon(point)[0]
        return float(lat), float(lon)
