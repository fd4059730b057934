"""Garbage and stalls on the default model: the static-object stage end to end through
`streetwatch score`, on real street footage with real objects added at known times.

Background: vtest.avi (Debian opencv-doc), real pedestrians walking across a walkway, real
litter on the grass since before the clip starts (part of the background: never a case), a
van parked at the top right. Objects: opencv-doc's photo of a cardboard box (the heap) and its
pile of fruit (litter), the man of zidane.jpg (a vendor, or someone standing alone), the bus
of bus.jpg. Every zone checks all three types, as a city would configure them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from models.samples import OPENCV_DATA, sample_path
from tests.support.scenes import (
    BUS_CROP,
    PERSON_CROP,
    Sprite,
    crop,
    panned,
    relit,
    render,
    video_frames,
)
from tests.test_scoring import START, at, main_score, ts

ALL = ["illegal_parking", "street_stall", "garbage"]
FULL_FRAME = [[0, 0], [768, 0], [768, 576], [0, 576]]
RULES = {t: {"dwell_s": 20, "clear_s": 10} for t in ALL}
FPS = 10
SECONDS = 80
HEAP_AT = (400, 230)  # on the walkway, in the pedestrians' path
VENDOR_AT = (475, 200)  # standing just right of the heap
TOLERANCE_S = 2.0  # a few samples at 2 fps: the short-term background's absorption


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, vtest_avi) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("static")
    heap = crop(OPENCV_DATA / "box.png", (0, 0, 324, 223), 70)
    litter = crop(OPENCV_DATA / "fruits.jpg", (0, 0, 512, 480), 60)
    man = crop(sample_path("zidane.jpg"), PERSON_CROP, 45)
    bus = crop(sample_path("bus.jpg"), BUS_CROP, 300)

    def street():
        return video_frames(vtest_avi)

    plans = {
        # Dumped at 20 s, taken away at 60 s; people keep walking past and over it.
        "heap": (street(), [Sprite(heap).parked(20, 60, HEAP_AT)]),
        # Appears on the grass at 15 s and stays.
        "litter": (street(), [Sprite(litter).parked(15, SECONDS, (120, 420))]),
        # A heap of goods with its vendor standing beside it, from 20 s to 60 s.
        "stall": (
            street(),
            [Sprite(heap).parked(20, 60, HEAP_AT), Sprite(man).parked(20, 60, VENDOR_AT)],
        ),
        # Someone standing still for 40 s, with nothing beside them.
        "standing": (street(), [Sprite(man).parked(20, 60, VENDOR_AT)]),
        # A bus parks in the lower road from 20 s to 60 s.
        "bus": (street(), [Sprite(bus).parked(20, 60, (420, 300))]),
        # The street as it is.
        "street": (street(), []),
        # The whole picture 35% brighter from 40 s on.
        "lighting": (relit(street(), FPS, 40, 1.35), []),
        # The camera turns 90 px sideways at 40 s.
        "moved": (panned(street(), FPS, 40, 90), []),
        # A box lies there when the camera starts and is taken away at 30 s: its ghost (the
        # walkway reappearing) is not a new object.
        "ghost": (street(), [Sprite(heap).parked(0, 30, HEAP_AT)]),
    }
    return {
        name: render(out / f"{name}.mp4", background, SECONDS, FPS, sprites)
        for name, (background, sprites) in plans.items()
    }


def scored(tmp_path: Path, clip: Path, capsys) -> tuple[list[dict], str]:
    camera = {
        "id": clip.stem,
        "source": str(clip),
        "start_time": START.isoformat(),
        "sample": {"fps": 2},
        "zones": [{"id": "street", "polygon": FULL_FRAME, "checks": ALL}],
    }
    code, cases, printed = main_score(tmp_path, [camera], RULES, capsys)
    assert code == 0, printed
    return cases, printed


def of_type(cases: list[dict], type_: str) -> list[dict]:
    return [c for c in cases if c["type"] == type_]


def near(value: str | None, seconds: float) -> bool:
    return value is not None and abs((ts(value) - at(seconds)).total_seconds()) <= TOLERANCE_S


def assert_no_static_case(cases: list[dict]) -> None:
    assert of_type(cases, "garbage") == [] and of_type(cases, "street_stall") == [], cases


def test_heap_on_the_walkway_is_one_garbage_case_cleared_when_taken(
    default_model, scenes, tmp_path, capsys
):
    cases, _ = scored(tmp_path, scenes["heap"], capsys)
    (garbage,) = of_type(cases, "garbage")
    assert of_type(cases, "street_stall") == []
    assert near(garbage["first_seen"], 20)
    assert near(garbage["confirmed_at"], 20 + RULES["garbage"]["dwell_s"])
    assert near(garbage["cleared_at"], 60 + RULES["garbage"]["clear_s"])
    assert garbage["class_name"] == "static object"
    x1, y1, x2, y2 = garbage["bbox"]
    assert HEAP_AT[0] - 10 <= x1 < x2 <= HEAP_AT[0] + 80 and HEAP_AT[1] - 10 <= y1 < y2 <= 290
    kinds = {e["kind"] for e in garbage["evidence"]}
    assert kinds == {"first_seen", "confirmed", "cleared", "dwell"}  # dwell: the case's strip
    assert all(Path(e["path"]).stat().st_size > 10_000 for e in garbage["evidence"])


def test_litter_appearing_on_the_grass_is_one_garbage_case(default_model, scenes, tmp_path, capsys):
    cases, _ = scored(tmp_path, scenes["litter"], capsys)
    (garbage,) = of_type(cases, "garbage")
    assert of_type(cases, "street_stall") == []
    assert near(garbage["first_seen"], 15)
    assert near(garbage["confirmed_at"], 15 + RULES["garbage"]["dwell_s"])
    assert garbage["cleared_at"] is None  # still there when the clip ends
    x1, y1, x2, y2 = garbage["bbox"]
    assert 110 <= x1 < x2 <= 190 and 410 <= y1 < y2 <= 490


def test_heap_with_its_vendor_beside_it_is_a_stall_not_garbage(
    default_model, scenes, tmp_path, capsys
):
    cases, _ = scored(tmp_path, scenes["stall"], capsys)
    assert of_type(cases, "garbage") == []
    (stall,) = of_type(cases, "street_stall")
    assert near(stall["first_seen"], 20)
    assert near(stall["confirmed_at"], 20 + RULES["street_stall"]["dwell_s"])
    assert near(stall["cleared_at"], 60 + RULES["street_stall"]["clear_s"])


def test_a_person_standing_still_alone_is_neither(default_model, scenes, tmp_path, capsys):
    cases, _ = scored(tmp_path, scenes["standing"], capsys)
    assert_no_static_case(cases)


def test_a_parked_bus_is_parking_only(default_model, scenes, tmp_path, capsys):
    cases, _ = scored(tmp_path, scenes["bus"], capsys)
    assert_no_static_case(cases)
    buses = [c for c in of_type(cases, "illegal_parking") if c["class_name"] == "bus"]
    assert len(buses) == 1 and near(buses[0]["confirmed_at"], 40)


def test_the_unchanged_street_and_its_old_litter_give_nothing(
    default_model, scenes, tmp_path, capsys
):
    cases, _ = scored(tmp_path, scenes["street"], capsys)
    assert_no_static_case(cases)
    # The van parked at the top right is the one case, as without the static stage.
    # The van and the car parked at the top right are the cases, as without the static stage:
    # two vehicles, two cases (they once shared an incident id, both seen from the first frame).
    assert sorted(c["class_name"] for c in cases) == ["car", "truck"]
    assert all(c["bbox"][0] > 600 and c["bbox"][3] < 120 for c in cases)


def test_a_lighting_step_gives_nothing_and_keeps_the_parked_van(
    default_model, scenes, tmp_path, capsys
):
    cases, printed = scored(tmp_path, scenes["lighting"], capsys)
    assert_no_static_case(cases)
    assert "1 scene changes" in printed
    # The van and the car parked at the top right (two cases) stay through the step.
    assert sorted(c["class_name"] for c in cases) == ["car", "truck"]
    assert all(c["cleared_at"] is None for c in cases)


def test_a_moved_camera_is_a_scene_change_not_garbage(
    default_model, scenes, tmp_path, capsys, caplog
):
    with caplog.at_level(logging.INFO, logger="detector.pipeline"):
        cases, printed = scored(tmp_path, scenes["moved"], capsys)
    assert_no_static_case(cases)
    assert "1 scene changes" in printed
    assert "scene change (moved) at 40.0 s" in caplog.text


def test_a_removed_objects_ghost_is_never_garbage(default_model, scenes, tmp_path, capsys):
    cases, _ = scored(tmp_path, scenes["ghost"], capsys)
    assert_no_static_case(cases)


def test_stand_in_off_checks_nothing_and_says_so(default_model, scenes, tmp_path, capsys, caplog):
    camera = {
        "id": "heap",
        "source": str(scenes["heap"]),
        "start_time": START.isoformat(),
        "sample": {"fps": 2},
        "zones": [{"id": "street", "polygon": FULL_FRAME, "checks": ALL}],
    }
    rules = RULES | {"garbage": RULES["garbage"] | {"stand_in": "off"}}
    code, cases, _ = main_score(tmp_path, [camera], rules, capsys)
    assert code == 0
    assert of_type(cases, "garbage") == []
    assert "checks garbage, but model 'default' has no class for it" in caplog.text
