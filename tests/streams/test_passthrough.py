"""Pass-through loopback cameras (what the capacity benchmark serves), and keyframe-only
sampling of a stream with B-frames: each keyframe comes out as it arrives, not held back in
the decoder until two more have come."""

from __future__ import annotations

import subprocess
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from streams.sources.health import HealthEvent
from streams.sources.rtsp import RtspSource
from streams.sources.sampling import Sampling
from tests.support.testcam import RtspServer

KEYFRAMES = 4


@pytest.fixture(scope="module")
def b_frame_clip(tmp_path_factory: pytest.TempPathFactory, rtsp_server_deps: None) -> Path:
    """Four seconds at 10 fps, a keyframe every second, with B-frames (as many cameras send)."""
    path = tmp_path_factory.mktemp("clips") / "b_frames.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
         "-t", str(KEYFRAMES), "-c:v", "libx264", "-g", "10", "-keyint_min", "10",
         "-sc_threshold", "0", "-bf", "2", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_keyframes_of_a_b_frame_stream_come_out_as_they_arrive(b_frame_clip):
    ended = threading.Event()

    def on_health(event: HealthEvent) -> None:
        if event.kind == "disconnected":
            ended.set()

    samples: list[float] = []
    with RtspServer({"cam": b_frame_clip}, passthrough=True, once=True) as server:
        source = RtspSource(
            "cam",
            server.url("cam"),
            Sampling(keyframes=True),
            open_timeout_s=4.0,
            read_timeout_s=2.0,
            on_health=on_health,
        )
        source.start()
        deadline = time.monotonic() + 30  # the clip plays once, then the server hangs up
        try:
            while not ended.is_set() and time.monotonic() < deadline:
                frame = source.latest(timeout=0.05)
                if frame is not None:
                    samples.append(frame.wall_time)
        finally:
            source.stop()
    assert ended.is_set(), "the stream never ended"
    # Held back in the decoder, the last two keyframes would come out together at the
    # stream's end (one of them dropped by the mailbox), not a second apart.
    assert len(samples) == KEYFRAMES
    assert min(b - a for a, b in pairwise(samples)) > 0.3
