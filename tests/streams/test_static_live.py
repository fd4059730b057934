"""Garbage on a live RTSP camera through `streetwatch run`: the static-object stage in the
worker, posting to the real API (the offline scenes are in tests/test_static_objects.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from api.server.settings import Settings
from models.samples import OPENCV_DATA
from tests.streams.test_worker import cases, worker_factory  # noqa: F401 (a fixture)
from tests.support.api import run_server
from tests.support.scenes import Sprite, crop, render, video_frames
from tests.support.testcam import RtspServer, wait_until

GRASS = [[0, 330], [330, 330], [330, 570], [0, 570]]
ALL = ["illegal_parking", "street_stall", "garbage"]
RULES = {t: {"dwell_s": 10, "clear_s": 5, "occlusion_s": 5} for t in ALL}


@pytest.fixture(scope="module")
def heap_clip(tmp_path_factory, vtest_avi, rtsp_server_deps) -> Path:
    """Real street footage; a pile of fruit lies on the grass from 5 s to 35 s of 40."""
    litter = crop(OPENCV_DATA / "fruits.jpg", (0, 0, 512, 480), 60)
    heap = Sprite(litter).parked(5, 35, (120, 420))
    out = tmp_path_factory.mktemp("live-static") / "heap.mp4"
    return render(out, video_frames(vtest_avi), 40, 10, [heap])


@pytest.fixture
def camera(heap_clip) -> Iterator[RtspServer]:
    with RtspServer({"cam": heap_clip}, fps=10, width=768, height=576, keyint=10) as server:
        yield server


def test_litter_on_a_live_camera_is_one_garbage_case_cleared_when_taken(
    camera,
    worker_factory,  # noqa: F811
    tmp_path,
):
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "model": "default",
                    "rules": RULES,
                    "api": {"url": server.url},
                    "cameras": [
                        {
                            "id": "cam",
                            "source": camera.url("cam"),
                            "sample": {"fps": 2},
                            "zones": [{"id": "walkway", "polygon": GRASS, "checks": ALL}],
                        }
                    ],
                }
            )
        )
        worker = worker_factory(config, key)

        def cleared() -> bool:
            return any(c["cleared_at"] for c in cases(server, key))

        wait_until(cleared, 120, "the heap's case, confirmed and then cleared")
        assert worker.signal(signal.SIGTERM) == 0, "\n".join(worker.log[-30:])
        found = cases(server, key)
        assert [c["type"] for c in found] == ["garbage"], [(c["type"], c["bbox"]) for c in found]
        (case,) = found
        assert case["class_name"] == "static object" and case["report_count"] == 1
        dwelt = datetime.fromisoformat(case["confirmed_at"]) - datetime.fromisoformat(
            case["first_seen"]
        )
        assert abs(dwelt.total_seconds() - RULES["garbage"]["dwell_s"]) <= 2.0
        assert {e["kind"] for e in case["evidence"]} >= {"first_seen", "confirmed", "cleared"}
        assert any("garbage confirmed" in line for line in worker.log)
