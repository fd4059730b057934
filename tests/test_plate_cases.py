"""Plates on parking cases end to end: `streetwatch score` with the real model and the real
plate models on real footage (vtest.avi) with the real bus of bus.jpg parked on it, carrying
a RENDERED Chinese plate (tests/support/plated.py: drawn with a real CJK font, not a
photograph), posted to the real API over real HTTP, read back from the case API, the change
feed and Open311."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import httpx
import pytest
import yaml

from api.server.settings import Settings
from models import plates, registry
from models.cache import HOME_ENV
from streams.cli import main
from tests.detector.plate_render import FONT
from tests.model_copies import model_copy
from tests.support.api import run_server
from tests.support.plated import plated_bus, scaled
from tests.support.scenes import Sprite, render, video_frames

START = "2026-05-01T08:00:00+08:00"
RULES = {"illegal_parking": {"dwell_s": 4, "clear_s": 4, "occlusion_s": 3}}
HERE = {"lat": 26.58, "lon": 101.72, "grid": "510402001001"}
NEARBY = {"lat": 26.58036, "lon": 101.72, "grid": "510402001001"}  # 40 m north
FAR = {"lat": 26.60, "lon": 101.72, "grid": "510402001002"}  # 2.2 km north
PLATE, OTHER = "京A12345", "沪C33M21"


@pytest.fixture(scope="module")
def plate_models() -> None:
    plates.fetch_plates()
    if not FONT.is_file():
        pytest.skip(f"needs {FONT} (fonts-wqy-microhei): run `make system-deps`")


@pytest.fixture(scope="module")
def clips(tmp_path_factory, vtest_avi, bus_jpg, plate_models) -> dict[str, tuple[Path, list]]:
    """Each clip (10 fps, 16 s) with its parking zone: the bus parks at 1 s and stays."""
    out = tmp_path_factory.mktemp("plated")
    lower = [[0, 300], [767, 300], [767, 575], [0, 575]]
    bus = plated_bus(bus_jpg, 500, PLATE, 140)
    other_view = plated_bus(bus_jpg, 540, PLATE, 150)  # another camera, nearer
    bare = plated_bus(bus_jpg, 500, None, 0)

    def parked(image, x: int, height: int) -> Sprite:
        return Sprite(image).parked(1, 16, (x, height - 10 - image.shape[0]))

    def clip(name: str, sprites: list[Sprite], factor: int = 1) -> Path:
        frames = video_frames(vtest_avi)
        return render(out / f"{name}.mp4", scaled(frames, factor), 16, 10, sprites)

    # Two buses side by side on a street twice the size (room for both, plates readable).
    left, right = plated_bus(bus_jpg, 700, PLATE, 160), plated_bus(bus_jpg, 700, OTHER, 160)
    two_zone = [[0, 600], [1535, 600], [1535, 1151], [0, 1151]]
    return {
        "one": (clip("one", [parked(bus, 250, 576)]), lower),
        "other_view": (clip("other_view", [parked(other_view, 200, 576)]), lower),
        "bare": (clip("bare", [parked(bare, 250, 576)]), lower),
        "two": (clip("two", [parked(left, 30, 1152), parked(right, 800, 1152)], 2), two_zone),
    }


def camera(cam_id: str, clip: tuple[Path, list], location: dict) -> dict:
    path, zone = clip
    return {
        "id": cam_id,
        "source": str(path),
        "start_time": START,
        "location": location,
        "sample": {"fps": 2},
        "zones": [{"id": "bay", "polygon": zone, "checks": ["illegal_parking"]}],
    }


def score(
    tmp_path: Path,
    cameras: list[dict],
    *extra: str,
    detector: dict | None = None,
    model: str = "default",
):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "config.yaml"
    doc = {"model": model, "rules": RULES, "cameras": cameras}
    if detector is not None:
        doc["detector"] = detector
    config.write_text(yaml.safe_dump(doc))
    out = tmp_path / "cases.jsonl"
    argv = ["score", "--config", str(config), "--out", str(out)]
    code = main([*argv, "--evidence-dir", str(tmp_path / "evidence"), *extra])
    return code, [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_score_gives_one_case_carrying_the_plate(default_model, clips, tmp_path) -> None:
    code, cases = score(tmp_path, [camera("cam-a", clips["one"], HERE)])
    assert code == 0
    (case,) = cases
    assert case["plate"] == PLATE and case["plate_confidence"] >= 0.8
    (shot,) = [e for e in case["evidence"] if e["kind"] == "plate"]
    crop = cv2.imread(shot["path"])  # the rectified plate, unaltered, nothing drawn on it
    assert crop.shape[:2] == (70, 220) and shot["boxes"] == []
    kinds = {e["kind"] for e in case["evidence"]}
    assert {"first_seen", "confirmed", "plate"} <= kinds

    # A bus without a plate: a case, and no plate guessed for it.
    code, cases = score(tmp_path / "bare", [camera("cam-b", clips["bare"], HERE)])
    (case,) = cases
    assert case["plate"] is None and case["plate_confidence"] is None
    assert "plate" not in {e["kind"] for e in case["evidence"]}

    # Plates off: the same footage, no plate read.
    code, cases = score(
        tmp_path / "off", [camera("cam-a", clips["one"], HERE)], detector={"plates": "off"}
    )
    assert code == 0 and [c["plate"] for c in cases] == [None]


def test_plates_merge_across_cameras_and_keep_two_cars_apart(
    default_model, clips, tmp_path, monkeypatch
) -> None:
    """cam-a and cam-b (uncalibrated, 40 m apart) see the same plate: one case. cam-c (far
    away) sees two buses with different plates in one zone: two cases, each with its plate.
    Nothing of a plate reaches Open311."""
    cameras = [
        camera("cam-a", clips["one"], HERE),
        camera("cam-b", clips["other_view"], NEARBY),
        camera("cam-c", clips["two"], FAR),
    ]
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        monkeypatch.setenv("STREETWATCH_API_KEY", key)
        code, reports = score(tmp_path, cameras, "--post", server.url)
        assert code == 0
        assert sorted((r["camera_id"], r["plate"]) for r in reports) == [
            ("cam-a", PLATE),
            ("cam-b", PLATE),
            ("cam-c", PLATE),
            ("cam-c", OTHER),
        ]
        auth = {"Authorization": f"Bearer {key}"}
        listed = httpx.get(f"{server.url}/v1/cases", headers=auth).json()["items"]
        by_sources = sorted((c["sources"], c["plate"], c["report_count"]) for c in listed)
        assert by_sources == [
            (["cam-a", "cam-b"], PLATE, 2),
            (["cam-c"], PLATE, 1),
            (["cam-c"], OTHER, 1),
        ]
        feed = httpx.get(f"{server.url}/v1/changes", headers=auth).json()["changes"]
        assert {c["data"]["case"]["plate"] for c in feed} == {PLATE, OTHER}

        # Open311 (JSON and XML, list and one request): the cases, never their plates.
        for fmt in ("json", "xml"):
            body = httpx.get(f"{server.url}/open311/v2/requests.{fmt}", headers=auth)
            assert body.status_code == 200
            assert body.text.count("<request>" if fmt == "xml" else "service_request_id") == 3
            one = httpx.get(
                f"{server.url}/open311/v2/requests/{listed[0]['id']}.{fmt}", headers=auth
            )
            for text in (body.text, one.text):
                assert "plate" not in text
                assert all(p not in text for p in (PLATE, OTHER, PLATE[1:], OTHER[1:]))


def test_without_the_plate_models_auto_says_so_and_on_refuses_to_start(
    default_model, clips, tmp_path, monkeypatch, capsys, caplog
) -> None:
    manifest, _ = registry.get("default")
    model = model_copy(tmp_path / "model", "default", "default", manifest.incident_classes)
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))  # the plate models are not here
    cam = camera("cam-a", clips["one"], HERE)

    code, cases = score(tmp_path / "on", [cam], detector={"plates": "on"}, model=str(model))
    printed = capsys.readouterr().err
    assert code != 0 and cases == []
    assert "detector.plates is on" in printed and "streetwatch models fetch plates" in printed

    code, cases = score(tmp_path / "auto", [cam], model=str(model))
    assert code == 0 and [c["plate"] for c in cases] == [None]  # a case, without a plate
    assert "parking cases will carry no plate" in caplog.text
