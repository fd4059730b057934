"""Plates through a live worker (`streetwatch run`, its own process): loopback RTSP cameras
play real footage (vtest.avi) with the real bus of bus.jpg parked on it, carrying a RENDERED
Chinese plate (tests/support/plated.py: a real CJK font, not a photograph), to the real API.

Three cameras: the 768x576 stream itself; a 384x288 sub-stream, on which the plate is too
small to read; and the same sub-stream with the 768x576 stream as its `record_source`, whose
plate is read on the main stream's frames."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from api.server.settings import Settings
from models import plates
from tests.detector.plate_render import FONT
from tests.streams.test_worker import worker_factory  # noqa: F401 - a fixture
from tests.support.api import run_server
from tests.support.plated import plated_bus
from tests.support.scenes import Sprite, render, video_frames
from tests.support.testcam import RtspServer, wait_until

PLATE = "京A12345"
RULES = {"illegal_parking": {"dwell_s": 4, "clear_s": 6, "occlusion_s": 3}}
ROAD = [[0, 300], [767, 300], [767, 575], [0, 575]]  # in the 768x576 picture


@pytest.fixture(scope="module")
def plated_clip(tmp_path_factory, bus_jpg, vtest_avi, rtsp_server_deps) -> Path:
    plates.fetch_plates()
    if not FONT.is_file():
        pytest.skip(f"needs {FONT} (fonts-wqy-microhei): run `make system-deps`")
    bus = plated_bus(bus_jpg, 500, PLATE, 140)
    sprite = Sprite(bus).parked(0, 10, (250, 566 - bus.shape[0]))
    out = tmp_path_factory.mktemp("live-plates") / "plated.mp4"
    return render(out, video_frames(vtest_avi), 10, 10, [sprite])


@pytest.fixture
def streams(plated_clip) -> Iterator[tuple[RtspServer, RtspServer]]:
    with (
        RtspServer({"cam": plated_clip}, fps=10, width=768, height=576, keyint=10) as main,
        RtspServer({"cam": plated_clip}, fps=10, width=384, height=288, keyint=10) as sub,
    ):
        yield main, sub


def camera(cam_id: str, url: str, lat: float, scale: float = 1.0, **extra) -> dict:
    return {
        "id": cam_id,
        "source": url,
        "location": {"lat": lat, "lon": 101.72, "grid": "510402001001"},  # 1 km apart
        "sample": {"fps": 2},
        "zones": [
            {
                "id": "road",
                "polygon": [[x * scale, y * scale] for x, y in ROAD],
                "checks": ["illegal_parking"],
            }
        ],
        **extra,
    }


def test_a_live_worker_reports_the_plate(streams, worker_factory, tmp_path) -> None:  # noqa: F811
    main, sub = streams
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = tmp_path / "config.yaml"
        cameras = [
            camera("cam-main", main.url("cam"), 26.58),
            camera("cam-sub", sub.url("cam"), 26.59, 0.5),
            camera("cam-rec", sub.url("cam"), 26.60, 0.5, record_source=main.url("cam")),
        ]
        doc = {"model": "default", "rules": RULES, "api": {"url": server.url}, "cameras": cameras}
        config.write_text(yaml.safe_dump(doc))
        worker = worker_factory(config, key)
        auth = {"Authorization": f"Bearer {key}"}

        def listed() -> list[dict]:
            return httpx.get(f"{server.url}/v1/cases", headers=auth, timeout=10).json()["items"]

        wait_until(lambda: len(listed()) == 3, 120, "a case from each camera")
        # SIGTERM: the open incidents' latest state (the vote so far) goes to the API.
        assert worker.signal(signal.SIGTERM) == 0, "\n".join(worker.log[-30:])
        assert worker.pending() == 0
        by_camera = {c["camera_id"]: c for c in listed()}
        assert by_camera["cam-main"]["plate"] == PLATE
        assert by_camera["cam-rec"]["plate"] == PLATE  # read on the main stream's frames
        assert by_camera["cam-sub"]["plate"] is None  # too small to read: no guess
        for cam in ("cam-main", "cam-rec"):
            shots = [e for e in by_camera[cam]["evidence"] if e["kind"] == "plate"]
            assert shots and all(e["boxes"] == [] for e in shots)
        assert not [e for e in by_camera["cam-sub"]["evidence"] if e["kind"] == "plate"]
        assert any("plates: read on confirmed illegal_parking sites" in x for x in worker.log)
