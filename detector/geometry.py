"""Vectorised box and polygon geometry used by the tracker and the rules."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a) x len(b)) of xyxy boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray, edge: float = 0.5) -> np.ndarray:
    """Even-odd rule test of N x 2 points against an M x 2 polygon; returns N bools. A point
    within `edge` pixels of the outline is inside: a zone drawn to the frame's border contains
    an object standing on it (the even-odd test alone leaves out its bottom and right edges)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at_y = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    inside = np.count_nonzero(crosses & (x < x_at_y), axis=1) % 2 == 1
    # Distance of each point to each edge: the projection onto the segment, clamped to it.
    dx, dy = x2 - x1, y2 - y1
    length2 = np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(((x - x1) * dx + (y - y1) * dy) / length2, 0.0, 1.0)
    near = np.hypot(x - (x1 + t * dx), y - (y1 + t * dy)).min(axis=1) <= edge
    return inside | near


def greedy_match(affinity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending affinity, each row and column used once."""
    if affinity.size == 0:
        return []
    rows, cols = np.nonzero(affinity >= threshold)
    order = np.argsort(-affinity[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for r, c in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs
