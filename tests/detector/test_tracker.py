"""How long the tracker holds each detection to have stayed (`stay_s`): what tells a vendor
who stays with their goods from a passer-by."""

from __future__ import annotations

import numpy as np

from detector.tracker import Tracker
from detector.types import Detections

SAMPLE_S = 0.5  # 2 fps


def person(x: float) -> Detections:
    """A standing person's box (36 x 86 px, as a pedestrian in vtest.avi) at `x`."""
    return Detections(
        np.array([[x, 215.0, x + 36.0, 301.0]], np.float32),
        np.array([0.8], np.float32),
        np.array([0], np.int32),
    )


def stays(xs: list[float]) -> list[float]:
    tracker = Tracker()
    out = []
    for i, x in enumerate(xs):
        t = i * SAMPLE_S
        ids = tracker.update(person(x), t)
        out.append(float(tracker.stays(ids, t)[0]))
    return out


def test_someone_standing_stays_through_the_jitter_of_their_box():
    jitter = [0.0, 3.0, -2.0, 4.0, -3.0, 1.0] * 4
    assert stays([400.0 + j for j in jitter]) == [i * SAMPLE_S for i in range(24)]


def test_someone_who_sets_off_stays_no_more_from_their_first_step():
    """Standing 10 s, then walking off at 20 px/s (10 px a sample): away from their spot
    once the walk takes them past half their width (18 px), they stay nowhere while they
    walk, however tall they are."""
    xs = [400.0] * 21 + [400.0 + 10.0 * k for k in range(1, 11)]
    got = stays(xs)
    assert got[:22] == [i * SAMPLE_S for i in range(22)]  # still about the spot at +10 px
    assert max(got[22:]) <= SAMPLE_S, got[22:]
