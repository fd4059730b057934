"""De-identified renditions of real frames: vtest.avi's people (boxes from the real default
model) and a RENDERED Chinese plate (tests/detector/plate_render.py) on the real bus photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.deidentify import Deidentifier, RegionKind, head_boxes, obscure
from detector.engine import Engine
from detector.plates import PlateReader
from models import plates
from tests.detector.plate_render import FONT, place_plate, render_plate

# A head region must differ from the original by at least this mean absolute grey level, and
# keep at most this share of its detail (variance of the Laplacian).
MIN_CHANGE = 8.0
MAX_DETAIL = 0.25


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    plates.fetch_plates()
    return PlateReader()


@pytest.fixture(scope="module")
def people(default_model: Path, vtest_avi: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, person boxes) for frames of vtest.avi, boxes from the real default model."""
    engine = Engine("default", classes={"person"})
    capture = cv2.VideoCapture(str(vtest_avi))
    frames = []
    for index in (40, 220, 500):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok
        frames.append(frame)
    capture.release()
    found = engine.detect(frames)
    assert all(len(d) >= 3 for d in found)  # a street with people
    return [(f, d.boxes) for f, d in zip(frames, found, strict=True)]


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _detail(grey: np.ndarray) -> float:
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def test_every_head_is_obscured_and_nothing_else_changes(people, reader) -> None:
    deidentify = Deidentifier(reader)
    for frame, boxes in people:
        original = frame.copy()
        result = deidentify(frame, boxes)
        assert np.array_equal(frame, original)  # the original is left alone
        heads = [r for r in result.regions if r.kind is RegionKind.head]
        assert len(heads) == len(boxes)
        h, w = frame.shape[:2]
        for head in head_boxes(boxes):
            x1, y1 = np.floor(np.maximum(head[:2], 0)).astype(int)
            x2, y2 = np.ceil(np.minimum(head[2:], [w, h])).astype(int)
            before = _grey(original[y1:y2, x1:x2])
            after = _grey(result.image[y1:y2, x1:x2])
            assert np.abs(after - before).mean() > MIN_CHANGE, (x1, y1, x2, y2)
            assert _detail(after) < MAX_DETAIL * _detail(before), (x1, y1, x2, y2)
        outside = np.ones((h, w), bool)
        for region in result.regions:
            x1, y1, x2, y2 = region.box
            outside[y1:y2, x1:x2] = False
        assert outside.mean() > 0.5
        assert np.array_equal(result.image[outside], original[outside])  # byte for byte


def test_a_plate_is_unreadable_in_the_rendition(reader, bus_jpg) -> None:
    if not FONT.is_file():
        pytest.skip(f"needs {FONT} (fonts-wqy-microhei): run `make system-deps`")
    bus = cv2.imread(str(bus_jpg))
    image, corners = place_plate(bus, render_plate("京A12345"), (430, 640), 200)
    assert [r.text for r in reader.read(image) if r.text] == ["京A12345"]

    # The bus is the incident: its plate is still obscured, but nothing more of it.
    vehicle = np.array([[20, 220, 800, 780]], np.float32)
    result = Deidentifier(reader)(image, np.zeros((0, 4), np.float32), keep=vehicle)
    # The plate's region (the detector also marks the bus's printed lettering: blurred too).
    centre = corners.mean(axis=0)
    (plate,) = [
        r
        for r in result.regions
        if r.kind is RegionKind.plate
        and r.box[0] < centre[0] < r.box[2]
        and r.box[1] < centre[1] < r.box[3]
    ]
    x1, y1, x2, y2 = plate.box
    assert x1 <= corners[:, 0].min() + 8 and x2 >= corners[:, 0].max() - 8
    assert y1 <= corners[:, 1].min() + 8 and y2 >= corners[:, 1].max() - 8
    assert (x2 - x1) < 1.15 * np.ptp(corners[:, 0])  # not padded into the vehicle
    assert not any(r.text for r in reader.read(result.image))
    assert reader.read_plate(result.image, corners, 1.0).text is None


def test_padding_stops_at_the_incident(people) -> None:
    frame, boxes = people[0]
    person = boxes[0]
    head = head_boxes(person[None])[0]
    # An incident's box right below the head: the head is obscured, the box is not touched.
    incident = np.array([[head[0] - 20, head[3], head[2] + 20, person[3]]], np.float32)
    result = Deidentifier()(frame, person[None], keep=incident)
    (region,) = result.regions
    assert region.box[3] <= int(np.ceil(head[3]))
    x1, y1, x2, y2 = np.ceil(incident[0]).astype(int)
    assert np.array_equal(result.image[y1:y2, x1:x2], frame[y1:y2, x1:x2])
    # Without the incident, the same head gets its margin.
    (free,) = Deidentifier()(frame, person[None]).regions
    assert free.box[3] > region.box[3]


def test_obscure_changes_only_its_box() -> None:
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), np.uint8)
    copy = image.copy()
    obscure(copy, (10, 20, 30, 50))
    changed = np.any(copy != image, axis=2)
    assert changed[20:50, 10:30].mean() > 0.9 and changed.sum() == changed[20:50, 10:30].sum()


def test_bad_input_is_refused_with_its_reason(people, reader) -> None:
    frame, boxes = people[0]
    deidentify = Deidentifier(reader)
    with pytest.raises(ValueError, match="H x W x 3"):
        deidentify(frame[..., 0], boxes)
    with pytest.raises(ValueError, match="uint8"):
        deidentify(frame.astype(np.float32), boxes)
    with pytest.raises(ValueError, match="N x 4"):
        deidentify(frame, boxes[:, :3])
    with pytest.raises(ValueError, match="finite"):
        deidentify(frame, np.array([[0, 0, np.nan, 10]]))
    with pytest.raises(ValueError, match="H x W x 3"):
        reader.read(np.zeros((0, 0, 3), np.uint8))
