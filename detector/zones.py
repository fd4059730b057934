"""Zones: polygons in a camera's pixel coordinates, each checking some incident types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.geometry import points_in_polygon


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    polygon: np.ndarray  # M x 2 float32, source-frame pixels
    checks: frozenset[str]  # incident types this zone checks
    min_object_area: float | None = None  # smallest static object, source pixels

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which of the N x 2 points lie inside the zone."""
        if len(points) == 0:
            return np.zeros(0, bool)
        return points_in_polygon(points, self.polygon)
