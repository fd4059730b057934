"""The static-object stage alone under the nuisances of a real street camera (issue #23).

Real footage (opencv-doc's vtest.avi: pedestrians walking a campus street, sampled at 2 fps as
the worker samples it) with opencv-doc's photo of a cardboard box dumped on the walkway, and
the light, the wind and the sensor applied to the whole picture: each test feeds the stage
frame by frame and checks what it reports, sample by sample. The whole path (model, rules,
cases) runs on the same kind of scenes in tests/test_static_objects.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice

import cv2
import numpy as np
import pytest

from detector.static_objects import StaticObjectStage, StaticParams
from detector.types import Detections, Frame
from models.samples import OPENCV_DATA, sample_path
from tests.support.nuisance import Night
from tests.support.scenes import BUS_CROP, crop, paste, video_frames

SAMPLE_S = 0.5  # 2 fps
HEAP_AT = (400, 230)  # on the walkway, in the pedestrians' path
HEAP_WIDTH = 64
STREET_TOP = 190  # the street below the van parked at the top right
Effect = Callable[[np.ndarray, float], np.ndarray]


def no_effect(image: np.ndarray, t: float) -> np.ndarray:
    return image


@dataclass
class Seen:
    """What the stage reported, sample by sample."""

    times: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    since: list[np.ndarray] = field(default_factory=list)
    occluded: list[np.ndarray] = field(default_factory=list)  # explained: never starts a site
    events: list = field(default_factory=list)

    def at(self, t: float) -> np.ndarray:
        return self.boxes[round(t / SAMPLE_S)]


def watch(
    vtest_avi,
    seconds: float,
    effect: Effect = no_effect,
    heap_from: float | None = None,
    sprite: np.ndarray | None = None,
    at: tuple[int, int] = HEAP_AT,
    followed: np.ndarray | None = None,
) -> Seen:
    """What the stage reports, sample by sample; `followed`: the boxes the rules follow for
    the model's classes, handed to the stage before each sample as the pipeline does."""
    heap = sprite if sprite is not None else crop(OPENCV_DATA / "box.png", (0, 0, 324, 223), 64)
    stage = StaticObjectStage(StaticParams(), 80, frozenset({0}), [], 10.0)
    if followed is not None:
        stage.followed = followed
    seen = Seen()
    stride = round(10 * SAMPLE_S)  # vtest.avi is 10 fps
    frames = islice(video_frames(vtest_avi), 0, round(seconds * 10), stride)
    for i, image in enumerate(frames):
        t = i * SAMPLE_S
        image = image.copy()
        if heap_from is not None and t >= heap_from:
            paste(image, heap, *at)
        found = stage.process(Frame("cam", i, t, effect(image, t)), Detections.empty())
        seen.times.append(t)
        seen.boxes.append(found.boxes.copy())
        seen.since.append(found.extra("since", np.nan).copy())
        seen.occluded.append(found.extra("occluded", False).copy())
        seen.events.extend(stage.events)
        stage.events.clear()
    return seen


def heap_box(width: int = HEAP_WIDTH) -> np.ndarray:
    x, y = HEAP_AT
    return np.array([x, y, x + width, y + 44], np.float32)


def overlaps(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    ix = np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0])
    iy = np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1])
    return (ix > 0) & (iy > 0)


def assert_only_the_heap(
    seen: Seen, dumped_at: float, found_within_s: float = 15.0, street_only: bool = False
) -> None:
    """The heap is reported from soon after it lands to the end, in every sample, dated from
    when it landed (within one sampling interval); nothing else is ever reported (with
    `street_only`, on the street below the van: see the morning tests)."""
    heap = heap_box()
    for t, boxes, since in zip(seen.times, seen.boxes, seen.since, strict=True):
        if street_only:
            keep = boxes[:, 3] > STREET_TOP
            boxes, since = boxes[keep], since[keep]
        on_heap = overlaps(boxes, heap)
        assert on_heap.all(), f"at {t} s: something that is not the heap: {boxes[~on_heap]}"
        if t >= dumped_at + found_within_s:
            assert on_heap.any(), f"at {t} s the heap is not reported"
            assert np.all(np.abs(since[on_heap] - dumped_at) <= SAMPLE_S), (t, since)
    assert seen.events == []


# -- the light -----------------------------------------------------------------------------


def daylight(t0: float, t1: float, gain: tuple[float, float], tint, regional: float = 0.0):
    """Light drifting from gain[0] to gain[1] and colour tint[0] to tint[1] (B, G, R gains)
    between t0 and t1; with `regional`, the right of the picture drifts that much further
    (the sun reaching one side of the street first)."""
    ramp = None

    def effect(image: np.ndarray, t: float) -> np.ndarray:
        nonlocal ramp
        a = min(max((t - t0) / (t1 - t0), 0.0), 1.0)
        a = a * a * (3 - 2 * a)
        g = gain[0] + a * (gain[1] - gain[0])
        colour = (1 - a) * np.asarray(tint[0]) + a * np.asarray(tint[1])
        gains = np.float32(g * colour)
        if regional:
            if ramp is None:
                w = image.shape[1]
                ramp = np.clip((np.arange(w, dtype=np.float32) - 0.35 * w) / (0.4 * w), 0, 1)
            gains = gains * (1 + regional * a * ramp)[None, :, None]
        return np.clip(image * gains, 0, 255).astype(np.uint8)

    return effect


WARM, NEUTRAL, BLUE = (0.78, 0.93, 1.12), (1.0, 1.0, 1.0), (1.15, 1.0, 0.85)


def test_a_heap_dumped_at_dusk_is_found_and_the_darkening_street_is_not(vtest_avi):
    # The light halves and turns blue over two minutes; the heap lands half way.
    seen = watch(vtest_avi, 120, daylight(0, 120, (1.0, 0.45), (NEUTRAL, BLUE)), heap_from=60)
    assert_only_the_heap(seen, 60)


@pytest.mark.xfail(
    strict=True,
    reason="known limit: with the right half brightening 15-20% more than the left in a "
    "sharp vertical band, a region of the lower road is reported for a few samples near the "
    "end of the drift (the full pipeline's morning scene, with a diagonal band, passes)",
)
def test_a_morning_brightening_one_side_first_gives_nothing_on_the_street(vtest_avi):
    # Below the white van parked at the top right: the van clips to white as the light grows
    # and is the model's to explain (a truck), which this stage-only test has no model for.
    seen = watch(vtest_avi, 120, daylight(0, 120, (0.5, 1.05), (WARM, NEUTRAL), regional=0.2))
    street = [b[b[:, 3] > STREET_TOP] for b in seen.boxes]
    assert all(len(b) == 0 for b in street), [b for b in street if len(b)]
    assert seen.events == []


def test_a_heap_dumped_in_the_morning_is_found(vtest_avi):
    # Dim and warm to full daylight over two minutes (the regional variant: see above).
    effect = daylight(0, 120, (0.5, 1.05), (WARM, NEUTRAL))
    assert_only_the_heap(watch(vtest_avi, 120, effect, heap_from=60), 60, street_only=True)


# -- the wind --------------------------------------------------------------------------------


def sway(px: float, degrees: float, from_s: float, seed: int = 0) -> Effect:
    """A camera on a pole in the wind from `from_s` on: a sway of up to `px` pixels and
    `degrees` of roll, with a little random jitter each frame."""

    def effect(image: np.ndarray, t: float) -> np.ndarray:
        if t < from_s:
            return image
        rng = np.random.default_rng((seed, round(t * 10)))
        dx = px * (0.8 * math.sin(2 * math.pi * 0.37 * t) + 0.2 * rng.normal())
        dy = px * (0.5 * math.sin(2 * math.pi * 0.29 * t + 1) + 0.15 * rng.normal())
        angle = degrees * math.sin(2 * math.pi * 0.23 * t + 2)
        h, w = image.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)

    return effect


def test_a_swaying_camera_keeps_its_heap_and_raises_no_scene_change(vtest_avi):
    # The heap lands at 10 s and is confirmed static before the wind rises at 30 s.
    seen = watch(vtest_avi, 120, sway(3, 0.6, from_s=30), heap_from=10)
    assert_only_the_heap(seen, 10)


def test_a_reaimed_camera_is_still_a_moved_scene_change(vtest_avi):
    def reaimed(image: np.ndarray, t: float) -> np.ndarray:
        if t < 30:
            return image
        h, w = image.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0, 1.0)
        m[:, 2] += (40, 25)
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    seen = watch(vtest_avi, 60, reaimed)
    assert [e.kind for e in seen.events] == ["moved"]
    assert 30 <= seen.events[0].pts <= 40


# -- the sensor ------------------------------------------------------------------------------


def night(light: float, noise: float, seed: int = 0) -> Effect:
    """An IR camera at night: grey, dark (gamma), with shot and read noise of `noise` levels
    at mid-grey."""

    def effect(image: np.ndarray, t: float) -> np.ndarray:
        rng = np.random.default_rng((seed, round(t * 10)))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        grey = 255.0 * light * grey**1.4
        sigma = noise * np.sqrt(np.maximum(grey, 1.0) / 128.0) + 0.4 * noise
        grey += sigma * rng.standard_normal(grey.shape, np.float32)
        return cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)

    return effect


def test_a_heap_at_night_on_an_ir_camera_is_found_on_time_every_sample(vtest_avi):
    assert_only_the_heap(watch(vtest_avi, 90, night(0.35, 8), heap_from=30), 30)


def test_high_iso_noise_from_the_first_sample_on_is_neither_a_scene_change_nor_an_object(
    vtest_avi,
):
    # A colour camera at high gain (blotchy colour noise, hot pixels) from its very first
    # sample, before the stage has had two samples to measure the noise by.
    seen = watch(vtest_avi, 60, Night(0.25, 14, ir=False, iso=True, seed=8))
    assert seen.events == []
    assert all(len(b) == 0 for b in seen.boxes), [b for b in seen.boxes if len(b)]


def test_a_heap_that_noise_hides_in_every_frame_is_found_on_time(vtest_avi):
    """A colour camera at high gain in a third of the light: the box differs from the
    walkway by about half of what one frame's noise makes a pixel differ by (the bar is five
    times the noise), so no single frame shows it; the averaged backgrounds do. (Standing
    pedestrians, whom no detection explains here, may be reported too: not asserted.)"""
    seen = watch(vtest_avi, 100, Night(0.3, 10, ir=False, iso=True, seed=3), heap_from=40)
    heap = heap_box()
    for t, boxes, since in zip(seen.times, seen.boxes, seen.since, strict=True):
        on_heap = overlaps(boxes, heap)
        if t < 40:
            assert not on_heap.any(), f"at {t} s, before the heap"
        elif t >= 40 + 15:
            assert on_heap.any(), f"at {t} s the heap is not reported"
            assert np.all(np.abs(since[on_heap] - 40) <= SAMPLE_S), (t, since[on_heap])
    assert seen.events == []


def test_one_noisy_sample_neither_loses_the_heap_nor_its_date(vtest_avi):
    def burst(image: np.ndarray, t: float) -> np.ndarray:
        if t != 40.0:
            return image
        rng = np.random.default_rng(1)
        return np.clip(image + rng.normal(0, 40, image.shape), 0, 255).astype(np.uint8)

    seen = watch(vtest_avi, 60, burst, heap_from=20)
    assert_only_the_heap(seen, 20)


# -- what an object is -----------------------------------------------------------------------


def test_a_region_larger_than_any_stall_or_heap_is_never_an_object(vtest_avi):
    # A bus-sized photo (over a third of the frame) appears and stays: no model class here
    # explains it, and it is too large to be a heap or a stall.
    bus = crop(sample_path("bus.jpg"), BUS_CROP, 560)
    seen = watch(vtest_avi, 60, heap_from=20, sprite=bus, at=(100, 150))
    assert all(len(b) == 0 for b in seen.boxes), [b for b in seen.boxes if len(b)]


@pytest.mark.parametrize("y", [576 - 30, 576 - 44])
def test_a_heap_on_the_bottom_edge_is_found(vtest_avi, y):
    seen = watch(vtest_avi, 60, heap_from=20, at=(500, y))
    boxes = seen.at(59.5)
    assert len(boxes) == 1 and boxes[0][3] == 576 and 495 <= boxes[0][0] < boxes[0][2] <= 570


def test_what_the_rules_follow_for_the_model_is_left_to_them(vtest_avi):
    """A bus parked on the lower road that the model sees only now and then (a bus, a truck,
    nothing: the compressed scenes of benchmarks/robustness.py): while the parking rule
    follows its site, the stage leaves its pixels to it, and reports no object there."""
    bus = crop(sample_path("bus.jpg"), BUS_CROP, 260)
    at = (420, 300)
    h, w = bus.shape[:2]
    # The model's box is a little inside the picture (its top is not the bus's).
    site = np.array([[at[0] + 10, at[1] + 15, at[0] + w - 5, at[1] + h - 2]], np.float32)
    seen = watch(vtest_avi, 60, heap_from=20, sprite=bus, at=at, followed=site)
    starting = [b[~o] for b, o in zip(seen.boxes, seen.occluded, strict=True)]
    assert all(len(b) == 0 for b in starting), [b for b in starting if len(b)]
    # Without it, the stage reports the bus as an object (the model's misses are its to see).
    alone = watch(vtest_avi, 60, heap_from=20, sprite=bus, at=at)
    assert (~alone.occluded[-1]).any(), alone.boxes[-1]
