"""The inference engine on the real default model and real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.engine import Engine, available_cores
from detector.types import Detections

# Hand-drawn boxes of the two men in zidane.jpg (1280 x 720), arms excluded.
ZIDANE_PEOPLE = np.array([[745, 40, 1145, 720], [125, 195, 640, 720]], np.float32)


@pytest.fixture(scope="module")
def engine(default_model: Path) -> Engine:
    return Engine("default")


@pytest.fixture(scope="module")
def bus(bus_jpg: Path) -> np.ndarray:
    return cv2.imread(str(bus_jpg))


@pytest.fixture(scope="module")
def zidane(zidane_jpg: Path) -> np.ndarray:
    return cv2.imread(str(zidane_jpg))


def named(engine: Engine, dets: Detections, name: str) -> Detections:
    return dets[dets.class_ids == engine.class_names.index(name)]


def area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, (len(a), len(b))."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_bus_photo(engine: Engine, bus: np.ndarray):
    dets = engine.detect_one(bus)
    buses = named(engine, dets, "bus")
    assert len(buses) == 1 and buses.scores[0] >= 0.8
    assert len(named(engine, dets, "person")) >= 3
    assert engine.manifest.input_size == (416, 416)


def test_zidane_photo_finds_both_men(engine: Engine, zidane: np.ndarray):
    people = named(engine, engine.detect_one(zidane), "person")
    assert len(people) >= 2
    best = iou(ZIDANE_PEOPLE, people.boxes).max(axis=1)
    assert (best >= 0.5).all(), best


def test_batch_of_different_sizes_matches_one_by_one(
    engine: Engine, bus: np.ndarray, zidane: np.ndarray
):
    batch = engine.detect([bus, zidane])
    for image, together in zip([bus, zidane], batch, strict=True):
        alone = engine.detect_one(image)
        np.testing.assert_array_equal(together.class_ids, alone.class_ids)
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-4)
        np.testing.assert_allclose(together.boxes, alone.boxes, atol=0.05)


def test_parallel_runs_match_one_run_in_input_order(
    engine: Engine, bus: np.ndarray, zidane: np.ndarray
):
    """A batch split across concurrent runs (chunks handed out as runs finish) comes back in
    input order with the detections one run on all cores gives."""
    images = [bus, zidane, bus[:, ::-1].copy(), cv2.resize(zidane, (640, 360)), bus, zidane]
    one_run = Engine("default", parallel_runs=1)
    assert engine.parallel_runs == available_cores()  # the default: one run per core
    three_runs = Engine("default", parallel_runs=3)
    for split in (three_runs.detect(images), engine.detect(images)):
        for together, alone in zip(split, one_run.detect(images), strict=True):
            np.testing.assert_array_equal(together.class_ids, alone.class_ids)
            np.testing.assert_allclose(together.scores, alone.scores, atol=1e-4)
            np.testing.assert_allclose(together.boxes, alone.boxes, atol=0.05)
    for at in range(4):  # whichever thread (caller or pool) meets the bad image, it is raised
        batch = [bus, zidane, bus]
        batch.insert(at, np.zeros((8, 8), np.uint8))
        with pytest.raises(ValueError, match="H x W x 3 uint8"):
            three_runs.detect(batch)
    with pytest.raises(ValueError, match="parallel_runs"):
        Engine("default", parallel_runs=0)


def test_boxes_are_in_original_pixels_and_inside_the_image(
    engine: Engine, bus: np.ndarray, zidane: np.ndarray
):
    crop = np.ascontiguousarray(bus[300:933, 20:777])  # odd-sized, wider than tall
    images = [bus, zidane, crop, cv2.resize(zidane, (213, 120))]
    for image, dets in zip(images, engine.detect(images), strict=True):
        h, w = image.shape[:2]
        assert len(dets) > 0
        assert dets.boxes.dtype == np.float32 and dets.scores.dtype == np.float32
        assert dets.class_ids.dtype == np.int32
        assert (dets.boxes >= 0).all() and (dets.boxes[:, [0, 2]] <= w).all()
        assert (dets.boxes[:, [1, 3]] <= h).all()
        assert (dets.boxes[:, 2:] > dets.boxes[:, :2]).all()
        assert (np.diff(dets.scores) <= 0).all()  # best first


def test_class_filter(default_model: Path, bus: np.ndarray):
    dets = Engine("default", classes={"bus", "car"}).detect_one(bus)
    assert len(dets) >= 1 and set(dets.class_ids.tolist()) <= {2, 5}
    with pytest.raises(ValueError, match="not in model"):
        Engine("default", classes={"stall"})


def test_aspect_preserving_input_size(engine: Engine, bus: np.ndarray):
    """The converted graph has dynamic H/W: a portrait frame can be fed as 320 x 416, at the
    same scale as in the 416 x 416 letterbox, and the grid decodes to the same place."""
    square = named(engine, engine.detect_one(bus), "bus")
    portrait = Engine("default", input_size=(320, 416))
    tall = named(portrait, portrait.detect_one(bus), "bus")
    assert len(tall) == 1 and tall.scores[0] >= 0.5
    assert iou(square.boxes, tall.boxes)[0, 0] >= 0.95
    with pytest.raises(ValueError, match="multiples of 32"):
        Engine("default", input_size=(300, 416))


def test_empty_and_invalid_input(engine: Engine):
    assert engine.detect([]) == []
    blank = engine.detect_one(np.full((480, 640, 3), 114, np.uint8))
    assert len(blank) == 0 and blank.boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        engine.detect_one(np.zeros((480, 640), np.uint8))
