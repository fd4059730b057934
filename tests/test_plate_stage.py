"""A camera's plate stage (streams/camera/plates.py) with the real plate models on the real
bus of bus.jpg carrying a RENDERED plate (tests/support/plated.py: a real CJK font, not a
photograph): what it reads, what it keeps as evidence, and when it stops reading."""

from __future__ import annotations

import numpy as np
import pytest

from detector.incidents import EvidenceShot, Incident, IncidentEvent
from detector.plates import PlateReader
from detector.types import Frame
from models import plates
from streams.camera.plates import MAX_ATTEMPTS, SETTLED_SUPPORT, CameraPlates
from tests.detector.plate_render import FONT
from tests.support.plated import plated_bus
from tests.support.scenes import paste, video_frames

PLATE = "京A12345"


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    plates.fetch_plates()
    if not FONT.is_file():
        pytest.skip(f"needs {FONT} (fonts-wqy-microhei): run `make system-deps`")
    return PlateReader()


def street(vtest_avi, bus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A real vtest.avi frame with the bus parked on it, and the bus's box."""
    frame = next(video_frames(vtest_avi)).copy()
    x, y = 250, 566 - bus.shape[0]
    paste(frame, bus, x, y)
    return frame, np.array([x, y, x + bus.shape[1], y + bus.shape[0]], np.float32)


class CountingReader:
    """The real reader, counting its calls."""

    def __init__(self, reader: PlateReader) -> None:
        self.reader, self.calls = reader, 0

    def read(self, image: np.ndarray):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.reader.read(image)


def parked(image: np.ndarray, box: np.ndarray) -> Incident:
    incident = Incident("inc-1", "illegal_parking", "cam", "bay", box, "bus", 0.9, 0.0, 4.0, 4.0)
    incident.evidence = [EvidenceShot("first_seen", 0.0, image, box)]
    return incident


def run(stage: CameraPlates, incident: Incident, image: np.ndarray, samples: int) -> None:
    for i in range(samples):
        pts = 4.0 + i / 2
        incident.last_seen = pts
        events = [IncidentEvent("confirmed", incident)] if i == 0 else []
        stage.read(Frame("cam", i, pts, image), events, [incident])


def test_a_parked_cars_plate_is_read_until_settled(reader, bus_jpg, vtest_avi) -> None:
    image, box = street(vtest_avi, plated_bus(bus_jpg, 500, PLATE, 140))
    counting = CountingReader(reader)
    stage = CameraPlates(counting)  # type: ignore[arg-type]
    stage.stage.reader = counting  # type: ignore[assignment]
    incident = parked(image, box)
    run(stage, incident, image, 30)
    vote = stage.result("inc-1")
    assert vote is not None and vote.text == PLATE and vote.support == SETTLED_SUPPORT
    assert counting.calls == SETTLED_SUPPORT  # not 31: a settled plate is read no more
    # One pending plate shot: the best read's rectified crop, nothing to draw on it.
    (shot,) = [s for s in incident.evidence if s.kind == "plate"]
    assert shot.box is None and shot.image.shape == (70, 220, 3)


def test_an_unreadable_plate_is_tried_a_bounded_number_of_times(reader, bus_jpg, vtest_avi) -> None:
    image, box = street(vtest_avi, plated_bus(bus_jpg, 500, None, 0))  # no plate on it
    counting = CountingReader(reader)
    stage = CameraPlates(counting)  # type: ignore[arg-type]
    stage.stage.reader = counting  # type: ignore[assignment]
    incident = parked(image, box)
    run(stage, incident, image, MAX_ATTEMPTS + 10)
    assert stage.result("inc-1") is None
    assert not [s for s in incident.evidence if s.kind == "plate"]
    assert counting.calls == MAX_ATTEMPTS
