"""A live camera's sample plan against a real loopback RTSP camera (vtest.avi, 10 fps, a
keyframe a second): what the runtime asks for decides what the camera thread decodes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from streams.sources.rtsp import RtspSource
from streams.sources.sampling import SamplePlan, Sampling
from tests.support.testcam import RtspServer


@pytest.fixture(scope="module")
def street(rtsp_server_deps: None, vtest_avi: Path) -> Iterator[RtspServer]:
    with RtspServer({"street": vtest_avi}, keyint=10) as server:
        yield server


def test_an_idle_plan_leaves_keyframes_undecoded_and_a_busy_one_takes_every_one(street):
    plan = SamplePlan(Sampling(keyframes=True))
    source = RtspSource("cam", street.url("street"), Sampling(keyframes=True), plan=plan)
    with source:
        first = source.latest(timeout=10.0)
        assert first is not None
        plan.settle(3.0)  # idle: a sample every 3 s
        time.sleep(2.5)  # let the plan learn the keyframe spacing
        decoded, skipped = source.stats.decoded, plan.skipped_groups
        idle = []
        deadline = time.monotonic() + 9.0
        while time.monotonic() < deadline:
            if (frame := source.latest(timeout=0.5)) is not None:
                idle.append(frame.pts)
                plan.settle(3.0)
        idle_decoded = source.stats.decoded - decoded
        idle_skipped = plan.skipped_groups - skipped
        plan.settle(0.0)  # busy: every keyframe
        if source.latest(timeout=4.0) is not None:
            plan.settle(0.0)
        decoded = source.stats.decoded
        time.sleep(4.0)
        busy_decoded = source.stats.decoded - decoded
    # 9 s at one keyframe a second: ~3 decoded, ~6 never decoded; samples ~3 s apart.
    assert 2 <= idle_decoded <= 4, idle_decoded
    assert idle_skipped >= 4, idle_skipped
    assert all(2.0 <= b - a <= 4.5 for a, b in pairwise(idle)), idle
    assert 3 <= busy_decoded <= 5, busy_decoded
    assert source.stats.decode_errors == 0
