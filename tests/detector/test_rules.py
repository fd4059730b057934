"""Site-keyed dwell rules on detection sequences built frame by frame.

The detector itself is exercised on real photos and real footage in tests/test_scoring.py;
here the rules get exact timelines, including ones no photo could stage (a stall).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from detector.pipeline import CameraPipeline, labels_for
from detector.rules import RuleParams
from detector.types import Detections, Frame
from detector.zones import Zone

CLASSES = ["person", "car", "umbrella", "bench", "dining table"]
EPOCH = datetime(2026, 5, 1, tzinfo=UTC)
IMAGE = np.zeros((480, 640, 3), np.uint8)
FPS = 2.0


FULL_FRAME = [[0, 0], [640, 0], [640, 480], [0, 480]]


def make_pipeline(polygon=FULL_FRAME, **overrides: RuleParams) -> CameraPipeline:
    params = {
        "illegal_parking": RuleParams(dwell_s=10, clear_s=5, occlusion_s=3),
        "street_stall": RuleParams(dwell_s=20, clear_s=5, occlusion_s=3),
        "garbage": RuleParams(dwell_s=10, clear_s=5),
    } | overrides
    labels = labels_for(
        CLASSES,
        {"illegal_parking": ["car"], "street_stall": ["umbrella", "dining table"]},
        ["person"],
        {"street_stall": ["umbrella", "dining table"]},
        params,
    )
    zone = Zone(
        "z1",
        np.array(polygon, np.float32),
        frozenset({"illegal_parking", "street_stall"}),
    )
    return CameraPipeline("cam", [zone], labels, EPOCH)


def dets(*objects: tuple[str, tuple[float, float, float, float]]) -> Detections:
    if not objects:
        return Detections.empty()
    return Detections(
        np.array([box for _, box in objects], np.float32),
        np.full(len(objects), 0.8, np.float32),
        np.array([CLASSES.index(name) for name, _ in objects], np.int32),
    )


def run(pipeline: CameraPipeline, timeline, duration_s: float):
    """timeline(t) -> Detections; returns (events, incidents still open at the end)."""
    events = []
    for i in range(int(duration_s * FPS)):
        t = i / FPS
        events += pipeline.process(Frame("cam", i, t, IMAGE), timeline(t))
    return events, pipeline.open_incidents()


CAR = (100.0, 200.0, 200.0, 260.0)


def test_parked_car_confirms_once_after_dwell():
    events, still_open = run(make_pipeline(), lambda t: dets(("car", CAR)), 40)
    assert [e.kind for e in events] == ["confirmed"]
    incident = events[0].incident
    assert incident.first_seen == 0.0
    assert incident.confirmed_at == pytest.approx(10.0)
    assert still_open == [incident]
    assert incident.cleared_at is None


def test_car_driving_through_never_confirms():
    def moving(t):
        x = 20 * t  # 20 px/s: a slow crawl, still moving over its own length in 5 s
        return dets(("car", (x, 200.0, x + 100, 260.0)))

    events, still_open = run(make_pipeline(), moving, 30)
    assert events == [] and still_open == []


def test_box_jitter_does_not_reset_dwell():
    rng = np.random.default_rng(7)

    def jittery(t):
        return dets(("car", tuple(np.array(CAR) + rng.normal(0, 4, 4))))

    events, _ = run(make_pipeline(), jittery, 20)
    assert [e.kind for e in events] == ["confirmed"]
    assert events[0].incident.confirmed_at == pytest.approx(10.0)


def test_short_gap_before_confirmation_keeps_the_dwell_timer():
    events, _ = run(make_pipeline(), lambda t: dets() if 4 <= t < 6 else dets(("car", CAR)), 20)
    assert len(events) == 1
    assert events[0].incident.first_seen == 0.0
    assert events[0].incident.confirmed_at == pytest.approx(10.0)


def test_long_gap_before_confirmation_restarts_the_dwell():
    events, _ = run(make_pipeline(), lambda t: dets() if 4 <= t < 9 else dets(("car", CAR)), 25)
    assert len(events) == 1
    assert events[0].incident.first_seen == pytest.approx(9.0)
    assert events[0].incident.confirmed_at == pytest.approx(19.0)


def test_occlusion_after_confirmation_is_one_incident():
    events, still_open = run(
        make_pipeline(), lambda t: dets() if 15 <= t < 19 else dets(("car", CAR)), 40
    )
    assert [e.kind for e in events] == ["confirmed"]
    assert len(still_open) == 1


def test_leave_and_park_again_is_two_incidents_with_distinct_ids():
    def timeline(t):
        return dets(("car", CAR)) if t < 15 or t >= 25 else dets()

    events, _ = run(make_pipeline(), timeline, 40)
    assert [e.kind for e in events] == ["confirmed", "cleared", "confirmed"]
    first, cleared, second = (e.incident for e in events)
    assert first is cleared
    assert first.cleared_at == pytest.approx(19.5)  # empty for clear_s = 5 after 14.5
    assert first.last_seen == pytest.approx(14.5)
    assert second.first_seen == pytest.approx(25.0)
    assert first.id != second.id


def test_ids_are_deterministic():
    a, _ = run(make_pipeline(), lambda t: dets(("car", CAR)), 20)
    b, _ = run(make_pipeline(), lambda t: dets(("car", CAR)), 20)
    assert a[0].incident.id == b[0].incident.id


def test_car_outside_the_zone_is_ignored():
    # The car's box overlaps the zone, but its ground point (150, 260) stands outside it.
    pipeline = make_pipeline(polygon=[[0, 0], [120, 0], [120, 480], [0, 480]])
    events, _ = run(pipeline, lambda t: dets(("car", CAR)), 30)
    assert events == []


@pytest.mark.parametrize(
    "box",
    [
        (100.0, 400.0, 200.0, 480.0),  # standing on the bottom edge
        (560.0, 300.0, 640.0, 380.0),  # cut by the right edge: its ground point is on it
        (600.0, 400.0, 640.0, 480.0),  # in the bottom right corner
    ],
)
def test_a_car_on_the_frame_border_is_inside_a_zone_drawn_to_it(box):
    events, _ = run(make_pipeline(), lambda t: dets(("car", box)), 30)
    assert [(e.kind, e.incident.type) for e in events] == [("confirmed", "illegal_parking")]


def test_a_point_just_outside_a_zone_edge_is_outside():
    zone = Zone("z", np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float32), frozenset())
    points = np.array([[50, 100], [100, 50], [50, 101], [101, 50], [0, 0], [50, 50]], np.float32)
    assert zone.contains(points).tolist() == [True, True, False, False, True, True]


UMBRELLA = (300.0, 100.0, 380.0, 180.0)
VENDOR = (385.0, 80.0, 420.0, 190.0)  # standing beside the umbrella


def test_attended_stall_confirms():
    events, _ = run(make_pipeline(), lambda t: dets(("umbrella", UMBRELLA), ("person", VENDOR)), 30)
    assert [(e.kind, e.incident.type) for e in events] == [("confirmed", "street_stall")]
    assert events[0].incident.class_name == "umbrella"


def test_unattended_umbrella_is_not_a_stall():
    events, _ = run(make_pipeline(), lambda t: dets(("umbrella", UMBRELLA)), 30)
    assert events == []


def test_people_standing_still_and_benches_never_make_a_stall():
    events, _ = run(
        make_pipeline(),
        lambda t: dets(("person", VENDOR), ("bench", (100.0, 300.0, 300.0, 360.0))),
        60,
    )
    assert events == []


def passer_by(t: float) -> tuple[str, tuple[float, float, float, float]]:
    """A new passer-by every 6 s, each strolling past the umbrella at 6 px/s: slow enough to
    stand almost still for a few seconds, never staying."""
    x = 385.0 + 6.0 * (t % 6.0)
    return "person", (x, 80.0, x + 35.0, 190.0)


def test_passers_by_strolling_past_never_make_a_stall():
    events, _ = run(make_pipeline(), lambda t: dets(("umbrella", UMBRELLA), passer_by(t)), 60)
    assert events == []


def test_a_vendor_who_stays_makes_a_stall_though_hidden_a_moment():
    def timeline(t: float) -> Detections:
        if 12.0 <= t < 14.0:  # someone passes in front: the model does not see the vendor
            return dets(("umbrella", UMBRELLA))
        return dets(("umbrella", UMBRELLA), ("person", VENDOR))

    events, _ = run(make_pipeline(), timeline, 40)
    assert [(e.kind, e.incident.type) for e in events] == [("confirmed", "street_stall")]


def test_a_camera_outage_neither_confirms_nor_clears():
    """Frames 60 s apart (camera down) count as MAX_GAP_S = 10 s of observed time."""
    pipeline = make_pipeline(illegal_parking=RuleParams(dwell_s=30, clear_s=15, occlusion_s=15))

    def feed(times, *objects):
        events = []
        for t in times:
            events += pipeline.process(Frame("cam", 0, float(t), IMAGE), dets(*objects))
        return [(e.kind, e.incident.confirmed_at) for e in events]

    assert feed(np.arange(0, 4.5, 0.5), ("car", CAR)) == []
    assert feed([64.0], ("car", CAR)) == []  # 4 + 10 s observed: no dwell of 30 s yet
    assert feed(np.arange(64.5, 80.5, 0.5), ("car", CAR)) == [("confirmed", 80.0)]
    # Confirmed; then the site is empty, but the camera is down for most of a minute.
    assert (
        feed(
            [81.0],
        )
        == []
    )
    assert (
        feed(
            [141.0],
        )
        == []
    )  # 0.5 + 10 s of observed emptiness: not yet clear_s
    assert feed(np.arange(141.5, 145, 0.5), ("car", CAR)) == []  # still there: one incident
    assert len(pipeline.open_incidents()) == 1
