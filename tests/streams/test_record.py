"""Evidence from the main stream: two real loopback RTSP cameras play vtest.avi, one as the
320x240 sub-stream the worker detects on, one as the 640x480 main stream (`record_source`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from detector.incidents import EvidenceShot, Incident, IncidentEvent
from detector.types import Frame
from streams.camera.record import RecordStream
from streams.sources.rtsp import RtspSource
from streams.sources.sampling import Sampling
from tests.support.testcam import RtspServer

KEYFRAMES = Sampling(keyframes=True)


@pytest.fixture(scope="module")
def streams(rtsp_server_deps: None, vtest_avi: Path) -> Iterator[tuple[RtspServer, RtspServer]]:
    with (
        RtspServer({"sub": vtest_avi}, width=320, height=240, keyint=10) as sub,
        RtspServer({"main": vtest_avi}, width=640, height=480, keyint=10) as main,
    ):
        yield sub, main


def test_main_stream_opens_only_when_wanted_and_gives_the_events_shot(streams):
    sub, main = streams
    record = RecordStream(lambda: RtspSource("cam/record", main.url("main"), KEYFRAMES))
    record.want(False)
    assert record.source is None  # an idle camera's main stream stays closed
    with RtspSource("cam", sub.url("sub"), KEYFRAMES) as detect:
        first = detect.latest(timeout=10.0)
        assert first is not None
        record.want(True)
        deadline = time.monotonic() + 10.0
        while record.latest is None and time.monotonic() < deadline:
            time.sleep(0.1)
            record.want(True)
        assert record.latest is not None, "no main-stream keyframe within 10 s"
        frame = detect.latest(timeout=3.0)
        assert frame is not None
    box = np.array([100.0, 60.0, 160.0, 120.0], np.float32)
    incident = Incident(
        "inc-1", "illegal_parking", "cam", "bay", box, "car", 0.9, first.pts, frame.pts, frame.pts
    )
    incident.evidence = [
        EvidenceShot("first_seen", first.pts, first.image, box),
        EvidenceShot("confirmed", frame.pts, frame.image, box),
    ]
    record.upgrade(IncidentEvent("confirmed", incident), frame)
    seen, confirmed = incident.evidence
    # The earlier shot stays as the sub-stream saw it; the event's own is the main stream's.
    assert seen.image is first.image and np.array_equal(seen.box, box)
    assert confirmed.image.shape == (480, 640, 3)
    assert np.allclose(confirmed.box, box * 2)
    assert record.upgraded == 1
    record.want(False)
    assert record.source is None and record.latest is None


def test_a_stale_main_stream_keyframe_is_not_used(streams):
    _, main = streams
    record = RecordStream(lambda: RtspSource("cam/record", main.url("main"), KEYFRAMES))
    record.want(True)
    try:
        deadline = time.monotonic() + 10.0
        while record.latest is None and time.monotonic() < deadline:
            time.sleep(0.1)
            record.want(True)
        assert record.latest is not None and record.latest.wall_time is not None
        image = np.zeros((240, 320, 3), np.uint8)
        box = np.array([10.0, 10.0, 20.0, 20.0], np.float32)
        old = Frame("cam", 0, 1.0, image, record.latest.wall_time - 10.0)
        incident = Incident("inc-2", "garbage", "cam", "z", box, "bag", 0.5, 0.0, 1.0, 1.0)
        incident.evidence = [EvidenceShot("confirmed", 1.0, image, box)]
        record.upgrade(IncidentEvent("confirmed", incident), old)
        assert incident.evidence[0].image is image  # ten seconds apart: not the same moment
        assert record.upgraded == 0
    finally:
        record.stop()
