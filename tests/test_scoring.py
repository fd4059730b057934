"""`streetwatch score` end to end: real model, real street footage, scenes from real photos.

Background: vtest.avi (Debian opencv-doc), real pedestrian footage with a van and a car
parked at the top right. Sprites: the bus of the model wheel's bus.jpg, a man from zidane.jpg.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from streams.cli import main
from tests.support.scenes import (
    BUS_CROP,
    PERSON_CROP,
    Sprite,
    crop,
    render,
    still_frames,
    video_frames,
)

START = datetime.fromisoformat("2026-05-01T08:00:00+08:00")
VAN_ZONE = [[640, 40], [730, 40], [730, 105], [640, 105]]  # the van parked at the top right
BAY = [[380, 380], [767, 380], [767, 560], [380, 560]]  # lower road: the bus parks here
ROAD_BAND = [[0, 380], [767, 380], [767, 575], [0, 575]]
WALKWAY = [[200, 160], [620, 160], [620, 330], [200, 330]]  # where the pedestrians walk
GRASS = [[0, 330], [330, 330], [330, 570], [0, 570]]
PARK_AT = (420, 300)  # bus sprite's top-left when parked: its ground line is y ~ 476
RULES = {
    "illegal_parking": {"dwell_s": 10, "clear_s": 4, "occlusion_s": 6},
    "street_stall": {"dwell_s": 10, "clear_s": 4, "occlusion_s": 3},
}


@pytest.fixture(scope="session")
def bus_sprite(bus_jpg):
    return crop(bus_jpg, BUS_CROP, 300)


@pytest.fixture(scope="session")
def clips(tmp_path_factory, vtest_avi, bus_sprite, zidane_jpg) -> dict[str, Path]:
    """Scenes with known ground truth, rendered once for the session (10 fps)."""
    out = tmp_path_factory.mktemp("clips")
    man = crop(zidane_jpg, PERSON_CROP, 250)
    arrive = (-300, PARK_AT[1])
    leave = (800, PARK_AT[1])

    def bus() -> Sprite:
        return Sprite(bus_sprite)

    scenes = {
        # Arrives at 2 s, parks until 22 s, away for 10 s, parks again from 32 s to the end.
        "park_twice": (
            54,
            [
                bus()
                .moving(0, 2, arrive, PARK_AT)
                .parked(2, 22, PARK_AT)
                .moving(22, 24, PARK_AT, leave)
                .moving(30, 32, arrive, PARK_AT)
                .parked(32, 54, PARK_AT)
            ],
        ),
        # Crosses the whole bay in 8 s without stopping.
        "drive_through": (20, [bus().moving(4, 12, arrive, leave)]),
        # Parks at 2 s; a man walks in front of it and hides it for about 4 s before the
        # dwell completes.
        "occluded": (
            30,
            [
                bus().moving(0, 2, arrive, PARK_AT).parked(2, 30, PARK_AT),
                Sprite(man).moving(5, 9, (300, 200), (650, 200)),
            ],
        ),
    }
    paths = {}
    for name, (duration, sprites) in scenes.items():
        paths[name] = render(out / f"{name}.mp4", video_frames(vtest_avi), duration, 10, sprites)
    # People standing still: one real frame held for 30 s.
    first = next(video_frames(vtest_avi))
    paths["standing"] = render(out / "standing.mp4", still_frames(first), 30, 10)
    return paths


def camera(cam_id: str, source: Path, zones: list[tuple[str, list, list[str]]]) -> dict:
    return {
        "id": cam_id,
        "source": str(source),
        "start_time": START.isoformat(),
        "location": {"lat": 26.58, "lon": 101.72, "address": "Bingcao Rd", "grid": "510402001001"},
        "sample": {"fps": 2},
        "zones": [{"id": z, "polygon": p, "checks": c} for z, p, c in zones],
    }


def score(tmp_path: Path, cameras: list[dict], capsys=None) -> tuple[int, list[dict], str]:
    return main_score(tmp_path, cameras, RULES, capsys)


def main_score(
    tmp_path: Path, cameras: list[dict], rules: dict, capsys=None
) -> tuple[int, list[dict], str]:
    """`streetwatch score` on a config of these cameras and rules: exit code, cases, output."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": "default", "rules": rules, "cameras": cameras}))
    out = tmp_path / "cases.jsonl"
    code = main(
        [
            "score",
            "--config",
            str(config),
            "--out",
            str(out),
            "--evidence-dir",
            str(tmp_path / "evidence"),
        ]
    )
    cases = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    printed = capsys.readouterr() if capsys else None
    return code, cases, (printed.out + printed.err) if printed else ""


def box_outline(shape: tuple[int, ...], bbox: list[float]) -> np.ndarray:
    """A mask of the pixels a drawn box covers (its 2-pixel outline)."""
    mask = np.zeros(shape[:2], np.uint8)
    x1, y1, x2, y2 = (round(v) for v in bbox)
    cv2.rectangle(mask, (x1, y1), (x2, y2), 1, 2)
    return mask.astype(bool)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def cases_of(cases: list[dict], cam: str, zone: str | None = None) -> list[dict]:
    return [c for c in cases if c["camera_id"] == cam and (zone is None or c["zone_id"] == zone)]


def test_real_footage_parked_van_is_one_case_and_pedestrians_none(
    default_model, vtest_avi, tmp_path, capsys
):
    both = ["illegal_parking", "street_stall"]
    code, cases, printed = score(
        tmp_path,
        [
            camera(
                "cam-001",
                vtest_avi,
                [
                    ("no-parking-east", VAN_ZONE, ["illegal_parking"]),
                    ("walkway", WALKWAY, both),
                    ("grass", GRASS, both),
                ],
            )
        ],
        capsys,
    )
    assert code == 0, printed
    assert len(cases) == 1, cases
    case = cases[0]
    assert (case["camera_id"], case["zone_id"], case["type"]) == (
        "cam-001",
        "no-parking-east",
        "illegal_parking",
    )
    assert case["event_code"] == "09009"
    assert case["class_name"] in {"truck", "car", "bus"}
    # The van is there from the first frame: confirmed one dwell (10 s) later, never cleared.
    assert ts(case["first_seen"]) == at(0)
    assert at(10) <= ts(case["confirmed_at"]) <= at(11)
    assert case["cleared_at"] is None
    assert ts(case["last_seen"]) >= at(78)
    assert case["location"]["grid"] == "510402001001"
    x1, y1, x2, y2 = case["bbox"]
    assert 630 < x1 < x2 < 740 and 30 < y1 < y2 < 110
    # Evidence: decodable JPEGs whose hashes match the report, the box and label as metadata.
    assert {e["kind"] for e in case["evidence"]} == {"first_seen", "confirmed", "dwell"}
    for ev in case["evidence"]:
        data = Path(ev["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ev["sha256"]
        assert cv2.imread(ev["path"]) is not None
        (box,) = ev["boxes"]
        assert box["label"] == case["class_name"]
        assert 0 < box["confidence"] <= 1  # the incident's confidence when the shot was written
    # The first-seen shot is frame 0 unaltered (JPEG noise only, nothing drawn along the box);
    # the annotated preview beside it has the box drawn.
    first = next(e for e in case["evidence"] if e["kind"] == "first_seen")
    frame = next(video_frames(vtest_avi)).astype(int)
    outline = box_outline(frame.shape, first["boxes"][0]["bbox"])
    clean = cv2.imread(first["path"]).astype(int)
    preview = cv2.imread(str(Path(first["path"]).parent / "annotated" / Path(first["path"]).name))
    assert np.abs(clean - frame)[outline].mean() < 8
    assert np.abs(preview.astype(int) - frame)[outline].mean() > 40
    assert "1 incidents" in printed and "frames/s" in printed


def test_scene_cases(default_model, clips, tmp_path, capsys):
    road = [("bay", BAY, ["illegal_parking", "street_stall"])]
    code, cases, printed = score(
        tmp_path,
        [
            camera("cam-twice", clips["park_twice"], road),
            camera("cam-drive", clips["drive_through"], [("road", ROAD_BAND, ["illegal_parking"])]),
            camera("cam-occluded", clips["occluded"], road),
            camera(
                "cam-standing",
                clips["standing"],
                [
                    ("walkway", WALKWAY, ["illegal_parking", "street_stall"]),
                    ("grass", GRASS, ["illegal_parking", "street_stall"]),
                ],
            ),
        ],
        capsys,
    )
    assert code == 0, printed

    # Leaves and parks again: two cases, each confirmed a dwell after it settled.
    first, second = cases_of(cases, "cam-twice")
    assert at(12) <= ts(first["confirmed_at"]) <= at(13.5)
    assert at(22) <= ts(first["cleared_at"]) <= at(28)
    assert at(42) <= ts(second["confirmed_at"]) <= at(43.5)
    assert second["cleared_at"] is None
    assert first["id"] != second["id"]
    assert {e["kind"] for e in first["evidence"]} == {"first_seen", "confirmed", "cleared", "dwell"}

    # Driving through, people standing still: nothing.
    assert cases_of(cases, "cam-drive") == []
    assert cases_of(cases, "cam-standing") == []

    # Hidden behind a passer-by for a few seconds: still one case, dwell timer not reset.
    (occluded,) = cases_of(cases, "cam-occluded")
    assert at(12) <= ts(occluded["confirmed_at"]) <= at(13.5)

    # Same input, same ids: a second run is identical.
    again = tmp_path / "again"
    again.mkdir()
    _, cases_again, _ = score(again, [camera("cam-twice", clips["park_twice"], road)])
    assert [c["id"] for c in cases_again] == [c["id"] for c in cases_of(cases, "cam-twice")]


def test_unreadable_video_is_reported_and_skipped(default_model, clips, tmp_path, capsys):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 1000)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clips["park_twice"].read_bytes()[:5000])
    road = [("bay", BAY, ["illegal_parking"])]
    code, cases, printed = score(
        tmp_path,
        [
            camera("cam-garbage", garbage, road),
            camera("cam-truncated", truncated, road),
            camera("cam-missing", tmp_path / "nope.mp4", road),
            camera("cam-good", clips["park_twice"], road),
        ],
        capsys,
    )
    assert code == 1
    assert len(cases_of(cases, "cam-good")) == 2
    assert {c["camera_id"] for c in cases} == {"cam-good"}
    for cam in ("cam-garbage", "cam-missing"):
        assert f"camera {cam}:" in printed
    assert "failed: " in printed


def test_bad_config_is_refused_with_yaml_paths(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "rules": {"illegal_parking": {"dwell_s": "long"}},
                "cameras": [
                    {
                        "id": "cam 1",
                        "source": "x.mp4",
                        "zones": [{"id": "z", "polygon": [[0, 0], [1, 1]], "checks": ["parking"]}],
                    }
                ],
            }
        )
    )
    out = tmp_path / "cases.jsonl"
    code = main(["score", "--config", str(config), "--out", str(out), "--evidence-dir", "ev"])
    err = capsys.readouterr().err
    assert code == 2
    assert not out.exists()
    for path in (
        "rules.illegal_parking.dwell_s",
        "cameras[0].id",
        "cameras[0].zones[0].polygon",
        "cameras[0].zones[0].checks[0]",
    ):
        assert path in err


def test_malformed_yaml_is_refused_with_its_line(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("cameras:\n  - id: a\n   source: [unclosed\n")
    code = main(["score", "--config", str(config), "--out", "o.jsonl", "--evidence-dir", "ev"])
    assert code == 2
    assert "line 3" in capsys.readouterr().err


def test_post_sends_each_case_once_even_when_run_twice(
    default_model, clips, tmp_path, capsys, monkeypatch
):
    import httpx

    from api.server.settings import Settings
    from tests.support.api import run_server

    road = [("bay", BAY, ["illegal_parking"])]
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"rules": RULES, "cameras": [camera("cam-1", clips["park_twice"], road)]})
    )
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        monkeypatch.setenv("STREETWATCH_API_KEY", server.create_key("ingest", "dispatch"))
        argv = ["score", "--config", str(config), "--out", str(tmp_path / "cases.jsonl")]
        argv += ["--evidence-dir", str(tmp_path / "ev"), "--post", server.url]
        assert main(argv) == 0
        assert main(argv) == 0  # the outbox remembers what the API took: nothing is sent again
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'streetwatch_reports_total{outcome="created"} 2.0' in metrics
        assert 'streetwatch_reports_total{outcome="replayed"}' not in metrics
        printed = capsys.readouterr().out
        assert printed.count("posted 2/2 cases") == 2
        listed = httpx.get(
            f"{server.url}/v1/cases",
            headers={"Authorization": f"Bearer {os.environ['STREETWATCH_API_KEY']}"},
        ).json()["items"]
    assert len(listed) == 2
    # The first stay was cleared (first seen, confirmed, cleared); the second lasts to the end.
    # Each with its dwell strip of 7 (test_dwell_strip_samples_the_dwell_in_time_order...).
    assert sorted(len(case["evidence"]) for case in listed) == [2 + 7, 3 + 7]


def test_post_while_the_api_is_down_loses_nothing_and_a_rerun_delivers(
    default_model, clips, tmp_path, capsys, monkeypatch
):
    """--post goes through the worker's durable outbox: with the API unreachable the cases
    wait on disk (listed by `streetwatch outbox`), and the same command run again once the
    API is up delivers them, each once."""
    import httpx

    from api.server.settings import Settings
    from tests.support.api import run_server
    from tests.support.testcam import free_port

    config = tmp_path / "config.yaml"
    road = [("bay", BAY, ["illegal_parking"])]
    config.write_text(
        yaml.safe_dump({"rules": RULES, "cameras": [camera("cam-1", clips["park_twice"], road)]})
    )
    port = free_port()
    out = tmp_path / "cases.jsonl"
    argv = ["score", "--config", str(config), "--out", str(out)]
    argv += ["--evidence-dir", str(tmp_path / "ev"), "--post", f"http://127.0.0.1:{port}"]
    monkeypatch.setenv("STREETWATCH_API_KEY", "sw_not_yet")
    assert main(argv) == 1  # scored, not delivered
    printed = capsys.readouterr()
    assert "posted 0/2 cases" in printed.out
    assert "2 cases not delivered yet" in printed.err and "run the same command" in printed.err
    assert len(out.read_text().splitlines()) == 2  # the cases themselves are written
    parts = tmp_path / "cases.jsonl.parts"
    assert main(["outbox", "list", "--state-dir", str(parts)]) == 0
    assert "2 pending, 0 dead" in capsys.readouterr().out

    with run_server(Settings(data_dir=tmp_path / "api"), port=port) as server:
        monkeypatch.setenv("STREETWATCH_API_KEY", server.create_key("ingest", "dispatch"))
        assert main(argv) == 0
        assert "posted 2/2 cases" in capsys.readouterr().out
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'streetwatch_reports_total{outcome="created"} 2.0' in metrics
    assert main(["outbox", "list", "--state-dir", str(parts)]) == 0
    assert "0 pending, 0 dead, 2 delivered" in capsys.readouterr().out


def test_post_without_a_key_is_refused_before_scoring(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("STREETWATCH_API_KEY", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"cameras": [camera("cam-1", tmp_path / "x.mp4", [("z", BAY, ["garbage"])])]}
        )
    )
    argv = ["score", "--config", str(config), "--out", str(tmp_path / "o.jsonl")]
    code = main([*argv, "--evidence-dir", str(tmp_path), "--post", "http://127.0.0.1:9"])
    assert code == 2
    assert "STREETWATCH_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_keyframe_sampling_numbers_frames_by_media_time(clips):
    from streams.sources.files import FileSource
    from streams.sources.sampling import Sampling

    frames = list(FileSource("cam", clips["drive_through"], Sampling(keyframes=True)).frames())
    # The scenes are encoded with a keyframe every 2 s at 10 fps.
    assert [f.index for f in frames] == [round(f.pts * 10) for f in frames]
    assert [f.index for f in frames][:3] == [0, 20, 40]


# Four points of vtest.avi's road surface with made-up but consistent map positions: a
# 40 m x 30 m patch, x to the east, the image's top to the north.
CALIBRATION = {
    "points": [
        {"image": [0, 576], "lat": 26.58, "lon": 101.72},
        {"image": [768, 576], "lat": 26.58, "lon": 101.7204},
        {"image": [768, 0], "lat": 26.58027, "lon": 101.7204},
        {"image": [0, 0], "lat": 26.58027, "lon": 101.72},
    ]
}


def test_a_calibrated_camera_reports_where_the_object_stands(
    default_model, vtest_avi, tmp_path, capsys
):
    cam = camera("cam-001", vtest_avi, [("no-parking-east", VAN_ZONE, ["illegal_parking"])])
    cam["calibration"] = CALIBRATION
    code, cases, printed = score(tmp_path, [cam], capsys)
    assert code == 0, printed
    (case,) = cases
    x1, _, x2, y2 = case["bbox"]
    # With these points the mapping is linear: the ground point's share of the frame.
    expected_lat = 26.58 + 0.00027 * (1 - y2 / 576)
    expected_lon = 101.72 + 0.0004 * ((x1 + x2) / 2 / 768)
    assert case["position"]["lat"] == pytest.approx(expected_lat, abs=1e-6)
    assert case["position"]["lon"] == pytest.approx(expected_lon, abs=1e-6)
    assert case["location"]["lat"] == 26.58  # the camera's own place stays as configured


def test_uncalibrated_cameras_send_no_position(default_model, vtest_avi, tmp_path, capsys):
    cam = camera("cam-001", vtest_avi, [("no-parking-east", VAN_ZONE, ["illegal_parking"])])
    _, cases, _ = score(tmp_path, [cam], capsys)
    assert [c["position"] for c in cases] == [None]


def test_dwell_strip_samples_the_dwell_in_time_order_with_the_box_on_the_bus(
    default_model, clips, bus_sprite, tmp_path, capsys
):
    """The strip (detector/strip.py) of the bus that parks twice: dwell 10 s, so the first
    five thumbnails sit a quarter dwell (2.5 s) apart from first seen to confirmation; then
    samples on a 2.5 s grid after confirmation, thinned to an even spread as it goes on."""
    road = [("bay", BAY, ["illegal_parking"])]
    code, cases, printed = score(tmp_path, [camera("cam-twice", clips["park_twice"], road)], capsys)
    assert code == 0, printed
    first, second = cases
    h, w = bus_sprite.shape[:2]
    bus = np.array([PARK_AT[0], PARK_AT[1], PARK_AT[0] + w, PARK_AT[1] + h], float)
    scale = 320 / 768  # the scenes are vtest.avi's 768 x 576
    for case in (first, second):
        strip = [e for e in case["evidence"] if e["kind"] == "dwell"]
        times = [ts(e["captured_at"]) for e in strip]
        assert times == sorted(times)
        first_seen, confirmed = ts(case["first_seen"]), ts(case["confirmed_at"])
        before = [t for t in times if t <= confirmed]
        # Dwell 0, 2.5, 5, 7.5 and 10 s (the 2 fps samples fall on each).
        assert [(t - first_seen).total_seconds() for t in before] == [0, 2.5, 5, 7.5, 10]
        assert before[-1] == confirmed
        end = ts(case["cleared_at"] or case["last_seen"])
        assert all(first_seen <= t <= end for t in times)
        for ev in strip:
            thumb = cv2.imread(ev["path"])
            assert thumb.shape == (round(576 * scale), 320, 3)
            (box,) = ev["boxes"]
            assert box["label"] == case["class_name"] == "bus"
            seen = np.array(box["bbox"])
            assert iou(seen, bus * scale) > 0.8, (ev["captured_at"], seen, bus * scale)
            # The thumbnail is the frame, unaltered: the bus sprite scaled, no box drawn in.
            x1, y1, x2, y2 = (bus * scale).round().astype(int)
            sprite = cv2.resize(bus_sprite, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
            assert np.abs(thumb[y1:y2, x1:x2].astype(int) - sprite).mean() < 12
    # Both stay over 10 s past confirmation (the first until it drives off, last seen at
    # 22.5 s; the second until the video ends at 53.5 s): samples at 2.5, 5 and 7.5 s on the
    # 2.5 s grid, then the fourth due (at 10 s) doubles the grid to 5 s, which keeps 5 s and
    # adds 10 s. Seven thumbnails each.
    for case in (first, second):
        confirmed = ts(case["confirmed_at"])
        later = [
            (ts(e["captured_at"]) - confirmed).total_seconds()
            for e in case["evidence"]
            if e["kind"] == "dwell" and ts(e["captured_at"]) > confirmed
        ]
        assert later == [5, 10]
        assert sum(e["kind"] == "dwell" for e in case["evidence"]) == 7
    assert ts(first["last_seen"]) == at(22.5) and ts(second["last_seen"]) == at(53.5)

    # Each thumbnail has its de-identified rendition, the heads obscured where they are on
    # the thumbnail: the confirming thumbnail changed where the confirmed frame's rendition
    # changed (scaled down, give or take a JPEG block), and nowhere else.
    for case in (first, second):
        frame = next(e for e in case["evidence"] if e["kind"] == "confirmed")
        thumb = next(
            e
            for e in case["evidence"]
            if e["kind"] == "dwell" and e["captured_at"] == frame["captured_at"]
        )
        full = changed(frame)
        assert full.any()  # vtest.avi's pedestrians
        size = (thumb_w := 320, round(576 * thumb_w / 768))
        near = cv2.dilate(
            cv2.resize(full.astype(np.uint8), size, interpolation=cv2.INTER_AREA),
            np.ones((17, 17), np.uint8),  # JPEG's 8-pixel blocks blur the edges
        ).astype(bool)
        small = changed(thumb)
        assert small.any() and not (small & ~near).any()


def changed(ev: dict) -> np.ndarray:
    """Where an evidence image's de-identified rendition differs from it."""
    original = cv2.imread(ev["path"]).astype(int)
    rendition = cv2.imread(ev["deidentified"]["path"]).astype(int)
    assert rendition.shape == original.shape
    return np.abs(rendition - original).max(axis=2) > 40


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
