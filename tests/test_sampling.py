"""Adaptive sampling on real footage: what it samples, what it leaves undecoded, and that an
incident's times match fixed-rate sampling within the idle interval.

Scene: vtest.avi (Debian opencv-doc) with the bus of the model wheel's bus.jpg parking in
the lower road from 16 s to 62 s; empty road before and after.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from detector.rules import DEFAULT_RULES, RuleParams
from detector.static_objects import StaticParams
from streams.camera.engines import engine_for, labels_of
from streams.camera.evidence import EvidenceWriter
from streams.config import parse_config
from streams.offline.scoring import score_camera
from streams.sources.files import FileSource
from streams.sources.sampling import SamplePlan, Sampling, policy_for
from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames
from tests.test_scoring import BAY, PARK_AT, START

DWELL_S = 40.0  # idle interval: 5% of it, 2 s (four fixed-rate samples at 2 fps)
RULES = {"illegal_parking": {"dwell_s": DWELL_S, "clear_s": 4, "occlusion_s": 6}}


@pytest.fixture(scope="module")
def long_park(tmp_path_factory, vtest_avi, bus_jpg) -> Path:
    """70 s at 10 fps, a keyframe every second: the bus drives in over 14-16 s, stands until
    62 s, leaves by 64 s."""
    bus = Sprite(crop(bus_jpg, BUS_CROP, 300))
    bus.moving(14, 16, (-300, PARK_AT[1]), PARK_AT).parked(16, 62, PARK_AT)
    bus.moving(62, 64, PARK_AT, (800, PARK_AT[1]))
    out = tmp_path_factory.mktemp("sampling") / "long_park.mp4"
    return render(out, video_frames(vtest_avi), 70, 10, [bus], keyint_s=1.0)


def test_policy_follows_the_rules():
    keyframes, fps2 = Sampling(keyframes=True), Sampling(fps=2.0)
    parking = DEFAULT_RULES["illegal_parking"]  # dwell 120 s
    # Parking alone: a twentieth of its dwell.
    assert policy_for(fps2, True, 10.0, [parking], None).idle_s == 6.0
    assert policy_for(fps2, True, 10.0, [parking], None).active_s == 0.5
    # Stall and garbage dwell longer, but their static stand-in needs a look every
    # short-term time constant; the floor caps long dwells.
    stand_ins = [DEFAULT_RULES["street_stall"], DEFAULT_RULES["garbage"]]
    assert policy_for(fps2, True, 10.0, stand_ins, StaticParams(short_term_s=8.0)).idle_s == 8.0
    assert policy_for(fps2, True, 10.0, stand_ins, None).idle_s == 10.0
    assert policy_for(keyframes, True, 4.0, [parking], None).idle_s == 4.0
    # Keyframe sampling is active at every keyframe; never slower than active.
    assert policy_for(keyframes, True, 10.0, [parking], None).active_s == 0.0
    short = RuleParams(dwell_s=5, clear_s=2)
    assert policy_for(fps2, True, 10.0, [short], None).idle_s == 0.5
    # Pinned to a fixed rate.
    assert policy_for(fps2, False, 10.0, [parking], None).idle_s == 0.5


def test_groups_with_no_sample_due_are_not_decoded(long_park):
    """A plan settled at 2 s on a 1 s GOP: every other group goes undecoded, the samples
    land exactly on the fps grid."""
    plan = SamplePlan(Sampling(fps=2.0))
    source = FileSource("cam", long_park, Sampling(fps=2.0), plan)
    taken = []
    for frame in source.frames():
        taken.append(round(frame.pts, 3))
        plan.settle(2.0)
    # The first sample's successor was planned before any settle: at the fps period.
    assert taken == [0.0] + [0.5 + 2 * k for k in range(35)]
    assert plan.skipped_groups == 35  # GOPs starting at 1, 3, ..., 69 s
    assert source.corrupt_packets == 0


def test_keyframe_plan_takes_the_keyframe_nearest_the_due_time(long_park):
    plan = SamplePlan(Sampling(keyframes=True))
    taken = []
    for frame in FileSource("cam", long_park, Sampling(keyframes=True), plan).frames():
        taken.append(round(frame.pts, 3))
        plan.settle(3.0)
    # Keyframes every second; after the first two (GOP unknown, then the period) every 3 s.
    assert taken == [0.0, 1.0] + [1.0 + 3 * k for k in range(1, 23)]
    assert plan.skipped_groups == 70 - len(taken)


def score(clip: Path, default_model: Path, tmp_path: Path, adaptive: bool, runs: int = 2):
    config = parse_config(
        {
            "model": "default",
            "detector": {"parallel_runs": runs},
            "rules": RULES,
            "cameras": [
                {
                    "id": "cam-adaptive" if adaptive else "cam-fixed",
                    "source": str(clip),
                    "start_time": START.isoformat(),
                    "sample": {"fps": 2, "adaptive": adaptive},
                    "zones": [{"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}],
                }
            ],
        }
    )
    engine = engine_for(config)
    evidence = EvidenceWriter(tmp_path / ("adaptive" if adaptive else "fixed"))
    return score_camera(config.cameras[0], engine, config, labels_of(engine, config), evidence)


def seconds(value: datetime | None) -> float:
    assert value is not None
    return (value - START).total_seconds()


def test_adaptive_timing_matches_fixed_rate_on_real_footage(long_park, default_model, tmp_path):
    fixed = score(long_park, default_model, tmp_path, adaptive=False)
    adaptive = score(long_park, default_model, tmp_path, adaptive=True)
    assert fixed.error is None and adaptive.error is None
    (f,) = fixed.cases
    (a,) = adaptive.cases
    idle_s = DWELL_S * 0.05
    # Fixed rate: seen as the bus settles, confirmed a dwell later, cleared once it left.
    assert 14 <= seconds(f.first_seen) <= 16.5
    assert DWELL_S <= seconds(f.confirmed_at) - seconds(f.first_seen) <= DWELL_S + 1.0
    assert 66 <= seconds(f.cleared_at) <= 68
    # Adaptive: the idle camera sees the arrival at most one idle interval later, so it
    # confirms at most that much later; it is sampled like the fixed camera while the site
    # is there, so the clearing is the same to the frame.
    assert 0 <= seconds(a.first_seen) - seconds(f.first_seen) <= idle_s
    assert 0 <= seconds(a.confirmed_at) - seconds(f.confirmed_at) <= idle_s
    assert a.cleared_at == f.cleared_at
    assert a.last_seen == f.last_seen
    assert a.class_name == f.class_name
    assert np.allclose(a.bbox, f.bbox, atol=15)
    # 140 samples at the fixed rate; the adaptive camera skips three in four of the ~30 s
    # of empty road.
    assert fixed.frames == 140
    assert adaptive.frames <= fixed.frames - 18


def test_adaptive_scoring_samples_the_same_whatever_the_cores(long_park, default_model, tmp_path):
    """Decoding runs a fixed number of samples ahead of the rules: one inference run or two,
    the same samples and the same case."""
    one = score(long_park, default_model, tmp_path / "one", adaptive=True, runs=1)
    two = score(long_park, default_model, tmp_path / "two", adaptive=True, runs=2)
    assert one.frames == two.frames
    assert [(c.first_seen, c.confirmed_at, c.cleared_at) for c in one.cases] == [
        (c.first_seen, c.confirmed_at, c.cleared_at) for c in two.cases
    ]
