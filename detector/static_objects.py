"""The static-object stage: something new that stays put where it should not be.

The classic left-object technique with two backgrounds (Porikli, Ivanov and Haga, "Robust
abandoned object detection using dual foregrounds", EURASIP JASP 2008), on a small frame and on
media time, so it finds garbage and stalls whatever classes the model has:

- a *short-term* background absorbs anything that stops moving within seconds; a *long-term*
  one takes many minutes, and is frozen wherever static evidence is accumulating, so a heap
  that stays is never absorbed while it is there;
- the frame is first registered onto the long-term background: a sway of the camera (a pole
  in the wind, up to `shake` of the width, a roll under a degree) found by phase correlation
  of each half of the frame is warped away, and the comparison allows a pixel of slack;
- the long-term background is compared as it looks in today's light: a per-channel ratio
  field, measured each sample between the short-term and the long-term backgrounds on a
  coarse grid and median-filtered (objects, people, cars change a few cells; daylight, clouds
  and shadows whole neighbourhoods), so slow drift neither creates objects nor hides them and
  frozen pixels follow their neighbours' light. It is measured afresh, never folded into the
  model, so its errors cannot feed on themselves;
- a pixel that differs from the long-term background, has settled in the short-term one (it
  has taken up `SETTLED` of the difference: the same seconds after an object lands whatever
  its contrast) and has held its grey level since the last sample is *static*: its evidence
  grows with observed time; one that differs from both (someone walking in front) keeps it, so
  passers-by do not reset an object; one that has matched the long-term background two samples
  in a row loses it quickly, so one noisy sample neither resets a pixel's evidence nor its
  start time. The threshold falls with the background's brightness (contrast falls with the
  light), never below the camera's noise, measured from the first two samples on, and a pixel
  with evidence keeps differing down to part of it;
- where that noise, not the light, sets the bar over most of the picture (night, IR, high
  ISO), the short-term background (an average) is compared with the long-term one too, at the
  bar of the noise left in their averages, while the frame differs by that bar as well: a dim
  object that one frame's noise hides is found, dated from when the frame first differed by
  it. The long-term background is first averaged plainly (`QUIET_SEED_SAMPLES`) where nothing
  differs, so it does not carry its seed frame's noise for half an hour;
- regions with enough evidence, less what a detection of someone who stays (a standing or
  sitting person, a parked vehicle, an umbrella) explains, become static objects: speckle
  opened away, connected components filtered by size and fill, dated by the median time their
  pixels first differed; static specks too small for any object are learnt into the
  background, so they neither freeze there nor join a real object later;
- a *ghost* (the road reappearing where a parked car stood) has its edges in the background,
  not in the frame, and a *relit* region (a light's pool, a shadow's edge) has the
  background's own texture: both are learnt into the background at once (where nobody passes
  in front) and never reported;
- a scene-wide change (a lighting step, auto-exposure, a day/night switch, a moved camera)
  shows as a large share of the frame differing: both models re-seed. A lighting change keeps
  the frame's structure (its edges correlate with the background's) and keeps confirmed
  objects; a moved camera does not, and is reported as `scene_changed`; so is a camera whose
  frame and short-term background both stop lining up with the long-term background while a
  smaller share differs (a crowd or rain passing leaves the short-term background in line),
  or at once when most of the frame differs and its edges line up at less than half the bar.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detector.stages import STAYS_AFTER_S, SURE_SCORE
from detector.types import Detections, Frame
from detector.zones import Zone

log = logging.getLogger(__name__)

STATIC_LABEL = "static object"
MIN_SIDE = 3  # analysis pixels
JOIN_PX = 4  # parts of a static region this close (analysis pixels) are one object
# A detection's box is loose: what lies this share of its size around it (a shadow, the
# wheels below a bus's box) is explained by it too.
EXPLAIN_MARGIN = 0.15
# The light's change is measured on cells this size (analysis pixels) and taken as the median
# of this many cells across: objects smaller than about half that window stay objects.
LIGHT_CELL = 8
LIGHT_MEDIAN = 9
LIGHT_FLOOR = 4.0  # 8-bit levels added to both sides of a light ratio: black stays finite
MIN_PEAK = 0.1  # phase correlation's peak below which a half of the frame says nothing
SWAY_MEMORY_S = 60.0  # how long after a registered sway the comparison keeps its slack
NOISE_EVERY = 8  # samples between measurements of the noise
CRUMBS_EVERY = 4  # samples between sweeps of settled specks (they have been static 12 s)
MIN_SHIFT = 0.5  # analysis pixels: a smaller sway is left to the comparison's one-pixel slack
DAYLIGHT_LEVEL = 100.0  # mean grey level of a daylit street: `threshold` applies from here up
MIN_THRESHOLD = 8.0  # 8-bit levels: the lowest the threshold falls in the dark
HOLD = 0.6  # share of the threshold at which a pixel with evidence still differs
MISSES = 2  # samples in a row matching the background before a pixel's evidence falls
RELIT_CORRELATION = 0.8  # grey levels correlating this well with the background's: relit
RELIT_TEXTURE = 6.0  # 8-bit levels of standard deviation the background needs for that test
MIN_FILL = 0.2  # an object covers at least this share of its box: speckle is not an object
# A pixel has settled (is no longer moving) once the short-term background has taken up this
# share of its difference from the long-term one: the same few seconds after an object lands
# whatever its contrast, where a fixed bar keeps a contrasty object moving for longer.
SETTLED = 0.4
# Samples over which a noisy camera's long-term background is first averaged plainly (each
# sample its share) rather than at its slow rate: seeded from one noisy frame it would carry
# that frame's noise for half an hour, and the averaged comparison needs it quiet.
QUIET_SEED_SAMPLES = 100


class StaticParams(BaseModel):
    """Settings of the static-object stage; the defaults suit a street camera sampled at
    1-2 fps or at its keyframes."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=320, ge=64, le=1280, description="analysis width in pixels")
    short_term_s: float = Field(
        default=6.0, gt=0, description="time constant of the short-term background"
    )
    long_term_s: float = Field(
        default=1800.0, gt=0, description="time constant of the long-term background"
    )
    static_after_s: float = Field(
        default=6.0, gt=0, description="static evidence (observed seconds) before a region counts"
    )
    threshold: float = Field(
        default=28.0, gt=0, lt=255, description="colour difference (8-bit levels) that differs"
    )
    min_area: float = Field(
        default=0.0015,
        gt=0,
        lt=1,
        description="smallest object as a share of the frame at its bottom edge; shrinks in "
        "proportion to the ground point's height in the frame (perspective, down to a quarter "
        "at the top), unless a zone sets min_object_area",
    )
    max_area: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="largest object, share of the frame its box covers: a region larger than "
        "any plausible stall or heap is never an object",
    )
    scene_change: float = Field(
        default=0.55, gt=0, lt=1, description="share of the frame differing that re-seeds"
    )
    moved_correlation: float = Field(
        default=0.45,
        gt=0,
        lt=1,
        description="edge correlation with the background below which a scene change means "
        "the camera moved",
    )
    memory_s: float = Field(
        default=20.0, ge=0, description="how long a stationary detection explains its pixels"
    )
    shake: float = Field(
        default=0.015,
        ge=0,
        lt=0.25,
        description="largest sway of the camera (a pole in the wind) registered away before "
        "comparing, as a share of the frame's width; a larger shift is a moved camera",
    )
    noise_factor: float = Field(
        default=5.0,
        ge=0,
        description="a pixel differs only by at least this many times the camera's measured "
        "noise (night, IR, high ISO), however low `threshold` is",
    )


SceneChange = Literal["lighting", "moved"]


@dataclass(frozen=True, slots=True)
class SceneEvent:
    kind: SceneChange
    pts: float
    share: float  # of the frame that differed
    correlation: float  # of the frame's edges with the background's


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _edges(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def _channel_max(diff: np.ndarray) -> np.ndarray:
    """The largest of three channels per pixel (OpenCV's per-channel max: a tenth of numpy's
    reduction over the last axis)."""
    b, g, r = cv2.split(diff)
    return cv2.max(cv2.max(b, g), r)


def _difference(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per pixel, the largest channel difference from the background."""
    return _channel_max(cv2.absdiff(image, background))


def _difference_near(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """As `_difference`, but from the nearest value the background takes within a pixel: what
    registration leaves of a sway (a fraction of a pixel, a roll's corners) does not differ."""
    # In 8 bits, where OpenCV's morphology is fastest and subtraction stops at zero.
    image8, background8 = cv2.convertScaleAbs(image), cv2.convertScaleAbs(background)
    kernel = np.ones((3, 3), np.uint8)
    below = cv2.subtract(cv2.erode(background8, kernel), image8)
    above = cv2.subtract(image8, cv2.dilate(background8, kernel))
    return _channel_max(cv2.max(below, above))


def _half_gray(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(_gray(image), (max(w // 2, 2), max(h // 2, 2)), interpolation=cv2.INTER_AREA)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 1.0


def _light(short: np.ndarray, long: np.ndarray) -> np.ndarray:
    """Per pixel and channel, the change of light from the long-term background to now (the
    short-term one, which follows it within seconds): the ratio of the two on a coarse grid,
    its median over `LIGHT_MEDIAN` cells (an object, a person or a passing car changes a few
    cells, daylight, clouds and shadows change whole neighbourhoods; the median keeps a
    shadow's edge), smoothly back to full size."""
    h, w = long.shape[:2]
    size = (max(1, w // LIGHT_CELL), max(1, h // LIGHT_CELL))
    now = cv2.resize(short, size, interpolation=cv2.INTER_AREA)
    then = cv2.resize(long, size, interpolation=cv2.INTER_AREA)
    # In 1/64 stops about a neutral 128, so an 8-bit median (any window size) can take it.
    stops = np.log2((now + LIGHT_FLOOR) / (then + LIGHT_FLOOR))
    code = np.clip(128.0 + 64.0 * stops, 0, 255).astype(np.uint8)
    k = min(LIGHT_MEDIAN, (min(size) - 1) | 1)
    if k >= 3:
        code = cv2.medianBlur(code, k)
    gain = np.exp2((code.astype(np.float32) - 128.0) / 64.0)
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)


class StaticObjectStage:
    """One camera's static-object stage. `explain_ids` are the classes whose stationary
    detections account for static pixels (people, vehicles, stand-in objects); `label_id` is
    the class id its objects get in the camera's label list."""

    labels = (STATIC_LABEL,)

    def __init__(
        self,
        params: StaticParams,
        label_id: int,
        explain_ids: frozenset[int],
        zones: list[Zone],
        max_gap_s: float,
    ) -> None:
        self.params = params
        self.label_id = label_id
        self._explain = np.zeros(label_id, bool)  # engine classes come before the label
        self._explain[list(explain_ids)] = True
        self.zones = zones
        self.max_gap_s = max_gap_s
        self.events: list[SceneEvent] = []  # scene changes since the caller last took them
        self.noise = 0.0  # the camera's measured noise, 8-bit levels at analysis size
        self.shift = (0.0, 0.0)  # the last sample's sway, registered away (analysis px)
        self._last_pts: float | None = None
        self._shape: tuple[int, int] | None = None
        self._window: np.ndarray | None = None
        self._last_half: np.ndarray | None = None
        self._swayed_at = -math.inf  # when registration last moved a frame back
        self._samples = 0
        # Boxes (source pixels) of what the rules follow for the model's own classes (a parked
        # bus, an umbrella), set by the pipeline before each sample: they explain their pixels
        # while the model, from one sample to the next, sees a bus, a truck, a car or nothing.
        self.followed = np.zeros((0, 4), np.float32)

    # -- models ------------------------------------------------------------------------

    def _small(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        width = min(self.params.width, w)
        height = max(1, round(h * width / w))
        if w > 3 * width:
            # Area averaging from 1080p costs 2 ms; a bilinear step to twice the size first
            # costs a third of that, and the area step after it still averages the noise.
            image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)

    def _seed(self, small: np.ndarray) -> None:
        self.short = small.copy()
        self.long = small.copy()
        shape = small.shape[:2]
        self.evidence = np.zeros(shape, np.float32)
        self.since = np.full(shape, np.nan, np.float32)
        self.misses = np.zeros(shape, np.uint8)
        self.explained_until = np.full(shape, -np.inf, np.float32)
        self._last_gray = _gray(small)
        # Samples the long-term background has taken in since its seed, up to
        # QUIET_SEED_SAMPLES: how much of one frame's noise it still carries.
        self._averaged = 1
        self._runs_from: float | None = None  # when the runs below were last followed
        self._run_since = np.full(shape, np.nan, np.float32)
        self._run_misses = np.zeros(shape, np.uint8)

    def _register(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frame moved back onto the background when the camera swayed by no more than
        `shake` (phase correlation of the two at half size, left and right halves apart so a
        roll shows too), and the frame's half-size grey (for the noise)."""
        h, w = small.shape[:2]
        now, then = _half_gray(small), _half_gray(self.long)
        half = (now.shape[1], now.shape[0])
        limit = self.params.shake * w
        self.shift = (0.0, 0.0)
        if limit <= 0 or half[0] < 16:
            return small, now
        mid = half[0] // 2
        if self._window is None or self._window.shape != (half[1], mid):
            self._window = cv2.createHanningWindow((mid, half[1]), cv2.CV_32F)
        right = slice(mid, 2 * mid)
        (lx, ly), left_peak = cv2.phaseCorrelate(then[:, :mid], now[:, :mid], self._window)
        (rx, ry), right_peak = cv2.phaseCorrelate(then[:, right], now[:, right], self._window)
        # A weak peak is a crowd or rain, not the scene moving: that half does not vote; two
        # halves sliding apart sideways are no sway either (a roll moves them up and down).
        if min(left_peak, right_peak) >= MIN_PEAK and abs(lx - rx) <= 1.0:
            dx, dy = lx + rx, ly + ry  # the halves' mean, in analysis pixels (half size x 2)
            angle = (ry - ly) / mid  # radians: the right half moved down as the left moved up
        elif max(left_peak, right_peak) >= MIN_PEAK:
            x, y = (lx, ly) if left_peak >= right_peak else (rx, ry)
            dx, dy, angle = 2 * x, 2 * y, 0.0
        else:
            return small, now
        if math.hypot(dx, dy) > limit or abs(angle) * w / 2 > limit:
            return small, now  # not a sway: the scene-change test judges it
        if math.hypot(dx, dy) < MIN_SHIFT and abs(angle) * w / 2 < MIN_SHIFT:
            return small, now
        self.shift = (dx, dy)
        self._swayed_at = self._last_pts if self._last_pts is not None else 0.0
        c, s = math.cos(angle), math.sin(angle)
        cx, cy = w / 2, h / 2
        # The inverse of a roll by `angle` about the centre followed by the shift.
        m = np.float32(
            [
                [c, s, cx - c * (cx + dx) - s * (cy + dy)],
                [-s, c, cy + s * (cx + dx) - c * (cy + dy)],
            ]
        )
        moved_back = cv2.warpAffine(small, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return moved_back, now

    def _measure_noise(self, now: np.ndarray) -> None:
        """The camera's noise: the median difference between this sample's half-size grey and
        the last one's, brought to the same mean level (robust to what moves, blind to the
        light's drift), followed slowly."""
        self._samples += 1
        last, self._last_half = self._last_half, now
        if last is None or last.shape != now.shape:
            return
        if self.noise > 0.0 and self._samples % NOISE_EVERY > 1:
            return  # measured on two samples in a row every NOISE_EVERY: it changes slowly
        # (From the first comparison on: a noisy camera's first samples, judged against a
        # bar that does not know its noise yet, would differ all over, a scene change.)
        gain = (float(now.mean()) + 1.0) / (float(last.mean()) + 1.0)
        # Two samples' noise in the difference: sqrt(2) of one's.
        sigma = 1.4826 * float(np.median(cv2.absdiff(now, last * gain))) / math.sqrt(2)
        self.noise = sigma if self.noise == 0.0 else 0.9 * self.noise + 0.1 * sigma

    def process(self, frame: Frame, found: Detections) -> Detections:
        """The frame's static objects, as rows to add to `found` (its detections so far)."""
        p = self.params
        small = self._small(frame.image)
        pts = frame.pts
        if self._shape != small.shape[:2]:
            self._shape = small.shape[:2]
            self._scale = frame.width / small.shape[1], frame.height / small.shape[0]
            self._seed(small)
            self._last_pts = pts
            self._last_half = _half_gray(small)
            return Detections.empty()
        last, self._last_pts = self._last_pts, pts
        dt = 0.0 if last is None else min(max(pts - last, 0.0), self.max_gap_s)

        small, half = self._register(small)
        self._measure_noise(half)
        # The long-term background as it looks in today's light, frozen pixels included (their
        # neighbours tell the light), so neither slow drift nor a cloud makes the unchanged
        # street differ from it. Measured afresh each sample, never folded into the model: a
        # correction of corrections would feed on its own errors.
        gain = _light(self.short, self.long)
        lit = cv2.multiply(self.long, gain)
        np.minimum(lit, 255.0, out=lit)

        # Contrast falls with the light (at dusk, at night, in the shade): the bar falls with
        # the background's brightness below daylight's, pixel by pixel, never under the
        # sensor's noise (half-size medians: about half the analysis size's) nor
        # `MIN_THRESHOLD`; a bright or clipped (saturated) part keeps the full bar.
        floor = max(p.noise_factor * 2.0 * self.noise, MIN_THRESHOLD)
        by_light = _gray(lit) * (p.threshold / DAYLIGHT_LEVEL)
        threshold = _bar(by_light, floor, p.threshold)
        a_short = 1.0 - math.exp(-dt / p.short_term_s)
        # The pixel of slack only while the camera sways (a still camera has no residue to
        # forgive, and the slack costs a third of the stage).
        swaying = pts - self._swayed_at <= SWAY_MEMORY_S
        d_long = _difference_near(small, lit) if swaying else _difference(small, lit)
        d_short = _difference(small, self.short)
        # Moving: differing from the short-term background, by more than what it has not yet
        # taken up of an object that landed a few seconds ago.
        fg_short = (d_short > threshold) & (d_short > (1.0 - SETTLED) * d_long)
        # A pixel with evidence keeps differing down to part of the threshold: one noisy
        # sample of a dark object does not take it back to the background.
        hold = np.where(self.evidence > 0, np.float32(HOLD), np.float32(1.0))
        fg_long = d_long > threshold * hold
        share = max(float(fg_long.mean()), float(fg_short.mean()))
        if share > p.scene_change:
            self._reseed(small, pts, share)
            return Detections.empty()
        if share > p.scene_change / 3:
            # Much of the picture differs from the long-term background, not enough for a
            # lighting step: a moved camera shows in its edges no longer lining up, in the
            # frame and in the short-term background, which settles on a new view within
            # seconds while a crowd or rain only passes through it.
            then = _edges(_gray(lit))
            correlation = _correlation(_edges(_gray(small)), then)
            # (Edges lining up at less than half the bar over most of the frame are no crowd:
            # a move, at once.)
            sweeping = share > 2 * p.scene_change / 3 and correlation < p.moved_correlation / 2
            if sweeping or (
                correlation < p.moved_correlation
                and _correlation(_edges(_gray(self.short)), then) < p.moved_correlation
            ):
                self._reseed(small, pts, share, correlation)
                return Detections.empty()
        # Noise-limited: the camera's noise, not the light, sets the bar over most of the
        # picture (night, IR, high ISO).
        noisy = floor > max(float(by_light.mean()), MIN_THRESHOLD)
        quiet_floor = floor
        if noisy:
            averaging = self._averaging(a_short)
            quiet_floor = max(p.noise_factor * 2.0 * self.noise * averaging, MIN_THRESHOLD)
        averaged = quiet_floor < floor
        if averaged:
            bar = _bar(by_light, quiet_floor, p.threshold)
            fg_long |= self._differs_averaged(lit, d_long, bar * hold, pts, last)

        # Evidence: grows while static, holds while something moves in front, falls fast once
        # the pixel has matched the long-term background for `MISSES` samples in a row (one
        # noisy sample neither resets it nor its start time).
        # Static: differing from the long-term background, settled in the short-term one and
        # held since the last sample (people streaming past can match a short-term background
        # full of them, never for two samples running).
        gray = _gray(small)
        held = cv2.absdiff(gray, self._last_gray) <= threshold
        self._last_gray = gray
        static = fg_long & ~fg_short & held
        self._passing = fg_short
        ev = self.evidence
        new = fg_long & np.isnan(self.since)
        # Dated from when the frame first differed at the averaged comparison's bar, where
        # that comparison found it: the short-term background takes seconds to follow.
        if averaged:
            runs = self._run_since[new]
            self.since[new] = np.where(np.isnan(runs), pts, runs)
        else:
            self.since[new] = pts
        ev[static] += dt
        np.minimum(ev, 2 * p.static_after_s, out=ev)
        misses = self.misses
        misses[fg_long] = 0
        np.add(misses, 1, out=misses, where=~fg_long & (misses < 255))
        gone = misses >= MISSES
        ev[gone] = np.maximum(ev[gone] - 2 * dt, 0.0)
        self.since[gone & (ev == 0)] = np.nan

        a_long = 1.0 - math.exp(-dt / p.long_term_s)
        cv2.accumulateWeighted(small, self.short, a_short)
        learning = ev == 0
        if self._averaged < QUIET_SEED_SAMPLES:
            self._averaged += 1
        if noisy and self._averaged < QUIET_SEED_SAMPLES:
            # Averaged plainly where nothing differs (people passing are not averaged in).
            plain = learning & ~fg_long & ~fg_short
            learning &= ~plain
            cv2.accumulateWeighted(
                small, self.long, max(a_long, 1.0 / self._averaged), mask=plain.astype(np.uint8)
            )
        cv2.accumulateWeighted(small, self.long, a_long, mask=learning.astype(np.uint8))

        self._remember_explained(found, pts)
        # What lies under someone who stays (a vendor) is theirs while they are there: what is
        # left when they go is dated from then, not from when they came.
        self.since[(self.explained_until > pts + 1.0) & fg_long] = pts
        # What a stationary detection explains is reported apart, as `occluded`: it may keep
        # a confirmed object seen while someone stands in front of it, never start one.
        static_px = ev >= p.static_after_s
        if self._samples % CRUMBS_EVERY == 0 and static_px.any():
            self._forget_crumbs(small, gain, static_px)
            static_px = ev >= p.static_after_s
        explained = self.explained_until >= pts
        parts = []
        for mask, occluded in ((static_px & ~explained, False), (static_px & explained, True)):
            if mask.any() and len(objects := self._objects(small, lit, gain, mask, pts)):
                objects.data["occluded"] = np.full(len(objects), occluded)
                parts.append(objects)
        if len(parts) == 2:
            return Detections.merge(parts, {})
        return parts[0] if parts else Detections.empty()

    def _averaging(self, a_short: float) -> float:
        """How much of one frame's noise is left in the difference between the short-term
        background (an average of the last seconds) and the long-term one."""
        return math.sqrt(a_short / (2.0 - a_short) + 1.0 / self._averaged)

    def _differs_averaged(
        self, lit: np.ndarray, d_long: np.ndarray, bar: np.ndarray, pts: float, last: float | None
    ) -> np.ndarray:
        """Where a camera's noise sets the bar (night, IR, high ISO), pixels whose short-term
        background differs from the long-term one by `bar` (for the noise left in their
        averages), while the frame differs by it too: a dim heap under noise that hides it in
        every single frame. Follows, per pixel, since when the frame has differed by that
        bar (one sample matching forgiven), to date what this comparison finds; `last` is the
        previous sample's time."""
        now = d_long > bar
        runs, misses = self._run_since, self._run_misses
        if self._runs_from is None or self._runs_from != last:
            # Not followed on the last sample (the light, not the noise, set the bar): they
            # start afresh, not from a run that ended unseen.
            runs.fill(np.nan)
            misses.fill(0)
        self._runs_from = pts
        # (Saturating uint8 addition and masked copies: a third of boolean indexing's time.)
        np.multiply(cv2.add(misses, 1), ~now, out=misses)
        np.copyto(runs, np.float32(pts), where=now & np.isnan(runs))
        np.copyto(runs, np.float32(np.nan), where=misses >= MISSES)
        return now & (_difference(self.short, lit) > bar)

    def snapshot(self, epoch_s: float) -> dict[str, np.ndarray] | None:
        """The backgrounds and evidence, so a restarted worker does not learn a heap that is
        already there as background (times absolute, unix seconds)."""
        if self._shape is None:
            return None
        return {
            "short": np.round(self.short).astype(np.uint8),
            "long": np.round(self.long).astype(np.uint8),
            "evidence": self.evidence.astype(np.float16),
            "since": self.since.astype(np.float64) + epoch_s,
            "scale": np.asarray(self._scale, np.float64),
        }

    def restore(self, state: dict[str, np.ndarray], epoch_s: float) -> None:
        self.short = state["short"].astype(np.float32)
        self.long = state["long"].astype(np.float32)
        self.evidence = state["evidence"].astype(np.float32)
        self.since = (state["since"] - epoch_s).astype(np.float32)
        self.misses = np.zeros(self.evidence.shape, np.uint8)
        self.explained_until = np.full(self.evidence.shape, -np.inf, np.float32)
        self._last_gray = _gray(self.short)
        self._averaged = QUIET_SEED_SAMPLES
        self._runs_from = None
        self._run_since = np.full(self.evidence.shape, np.nan, np.float32)
        self._run_misses = np.zeros(self.evidence.shape, np.uint8)
        self._shape = self.evidence.shape
        self._scale = (float(state["scale"][0]), float(state["scale"][1]))

    def _reseed(
        self, small: np.ndarray, pts: float, share: float, correlation: float | None = None
    ) -> None:
        if correlation is None:
            correlation = _correlation(_edges(_gray(small)), _edges(_gray(self.long)))
        kind: SceneChange = "moved" if correlation < self.params.moved_correlation else "lighting"
        keep = self.evidence >= self.params.static_after_s
        old_long = self.long
        self._seed(small)
        if kind == "lighting" and keep.any():
            # Objects that were static stay different from the background: the old background
            # under them, brought to the new light, so a confirmed heap is not cleared by a cloud.
            gain = (small.reshape(-1, 3).mean(0) + 1) / (old_long.reshape(-1, 3).mean(0) + 1)
            self.long[keep] = np.clip(old_long[keep] * gain, 0, 255)
            self.evidence[keep] = self.params.static_after_s
            self.since[keep] = pts  # a candidate starts its dwell again
        self.events.append(SceneEvent(kind, pts, share, correlation))

    def _remember_explained(self, found: Detections, pts: float) -> None:
        """Marks pixels under detections of the explaining classes: now for every such
        detection, for `memory_s` more for those that stay (a person the model misses now and
        then stays a person; a slow passer-by explains where they were only while there)."""
        if not len(found) and not len(self.followed):
            return
        # Someone the model saw surely once and weakly since (sitting, half hidden) is still
        # someone; a thing it only ever half takes for a person (fruit in a dim warm light)
        # explains nothing, or a heap of it never becomes an object.
        explains = self._explain[found.class_ids] & (found.extra("peak_score", 1.0) >= SURE_SCORE)
        stationary = found.extra("stay_s", 0.0) >= STAYS_AFTER_S
        sx, sy = self._scale
        h, w = self._shape
        until = self.explained_until
        boxes = np.concatenate([found.boxes[explains], self.followed])
        still = np.concatenate([stationary[explains], np.zeros(len(self.followed), bool)])
        for box, stays in zip(boxes, still, strict=True):
            mx, my = (box[2] - box[0]) * EXPLAIN_MARGIN, (box[3] - box[1]) * EXPLAIN_MARGIN
            x1 = max(0, int((box[0] - mx) / sx))
            y1 = max(0, int((box[1] - my) / sy))
            x2 = min(w, math.ceil((box[2] + mx) / sx) + 1)
            y2 = min(h, math.ceil((box[3] + my) / sy) + 1)
            region = until[y1:y2, x1:x2]
            np.maximum(region, pts + (self.params.memory_s if stays else 0.0) + 1e-3, out=region)

    def _objects(
        self, small: np.ndarray, lit: np.ndarray, gain: np.ndarray, mask: np.ndarray, pts: float
    ) -> Detections:
        """Static regions of `mask` as objects: `lit` is the long-term background in the
        frame's light (`gain` times the model's)."""
        p = self.params
        # Speckle (noise, rain, a leaf) goes first, so it neither counts nor joins real
        # objects across the frame; then the object's own gaps close.
        opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask8 = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        # Parts a little apart are one object (a heap a passer-by's box cut in two): grouped
        # on a dilated mask, measured on their own pixels.
        joined = cv2.dilate(mask8, np.ones((2 * JOIN_PX + 1, 2 * JOIN_PX + 1), np.uint8))
        n, groups = cv2.connectedComponents(joined, connectivity=8)
        if n <= 1:
            return Detections.empty()
        labels = np.where(mask8 > 0, groups, 0)
        ys, xs = np.nonzero(labels)
        owners = labels[ys, xs]
        h, w = mask.shape
        x = np.full(n, w, np.float32)
        y = np.full(n, h, np.float32)
        x2 = np.zeros(n, np.float32)
        y2 = np.zeros(n, np.float32)
        np.minimum.at(x, owners, xs)
        np.minimum.at(y, owners, ys)
        np.maximum.at(x2, owners, xs + 1)
        np.maximum.at(y2, owners, ys + 1)
        x, y, x2, y2 = x[1:], y[1:], x2[1:], y2[1:]
        area = np.bincount(owners, minlength=n)[1:].astype(np.float32)
        bw, bh = np.maximum(x2 - x, 0), np.maximum(y2 - y, 0)
        fill = area / np.maximum(bw * bh, 1)
        sx, sy = self._scale
        boxes = np.stack([x * sx, y * sy, x2 * sx, y2 * sy], axis=1)
        ground_y = (y + bh) / h
        min_area = self._min_area(boxes, ground_y) / (sx * sy)
        solid = (bw >= MIN_SIDE) & (bh >= MIN_SIDE) & (fill >= MIN_FILL)  # not a line, speckle
        keep = solid & (area >= min_area) & (bw * bh <= p.max_area * h * w)
        if not keep.any():
            return Detections.empty()

        # Ghost test on the blob's outline: a new object brings its edges, a removed one's
        # edges stay behind in the background.
        outline = cv2.morphologyEx(mask8, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).ravel() > 0
        near = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).ravel()
        owner = np.where(outline, near, 0).astype(np.int64)
        gray_now, gray_bg = _gray(small), _gray(lit)
        now = np.bincount(owner, weights=_edges(gray_now).ravel(), minlength=n)[1:]
        then = np.bincount(owner, weights=_edges(gray_bg).ravel(), minlength=n)[1:]
        # Relit test on its pixels: the background's own texture, brighter or darker (a
        # light's pool, a shadow's edge the light model has not caught up with), is no object.
        relit = _relit(gray_now[ys, xs], gray_bg[ys, xs], owners, n)
        learn = ((now < then) | relit) & keep
        if learn.any():
            self._learn(small, gain, np.isin(labels, np.flatnonzero(learn) + 1))
        keep &= ~learn
        if not keep.any():
            return Detections.empty()

        # When the object's own pixels first differed (the closing's filled holes have none):
        # their median, so a few pixels a noisy night sample touched earlier do not date it.
        since = _median_by(self.since[ys, xs], owners, n, pts)[keep]
        k = int(keep.sum())
        return Detections(
            boxes[keep].astype(np.float32),
            np.clip(fill[keep], 0.0, 1.0).astype(np.float32),
            np.full(k, self.label_id, np.int32),
            {"since": np.minimum(since, pts).astype(np.float64)},
        )

    def _forget_crumbs(self, small: np.ndarray, gain: np.ndarray, static: np.ndarray) -> None:
        """Static speckle and specks smaller than the smallest object, static for long (their
        evidence full), are the background's: a ghost too small to judge, what a drift left.
        Frozen out of the background they would pile up, and join a real object later."""
        p = self.params
        settled = self.evidence >= 2 * p.static_after_s - 1e-3
        kernel = np.ones((3, 3), np.uint8)
        opened = cv2.morphologyEx(static.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
        h, w = static.shape
        specks = stats[:, cv2.CC_STAT_AREA] < p.min_area * 0.25 * h * w
        specks[0] = False  # the background label
        crumbs = (static & (opened == 0)) | specks[labels]
        self._learn(small, gain, crumbs & settled)

    def _learn(self, small: np.ndarray, gain: np.ndarray, region: np.ndarray) -> None:
        """The background behind `region`, learnt at once (in the model's own light), where
        nothing passes in front of it now: a passer-by is not learnt with it."""
        region = region & ~self._passing
        if region.any():
            self.long[region] = small[region] / gain[region]
            self.evidence[region] = 0.0
            self.since[region] = np.nan

    def _min_area(self, boxes: np.ndarray, ground_y: np.ndarray) -> np.ndarray:
        """Smallest area in source pixels per object: the zone's own, else perspective."""
        fw, fh = self._shape[1] * self._scale[0], self._shape[0] * self._scale[1]
        default = self.params.min_area * fw * fh * np.clip(ground_y, 0.25, 1.0)
        ground = np.stack([(boxes[:, 0] + boxes[:, 2]) * 0.5, boxes[:, 3]], axis=1)
        for zone in self.zones:
            if zone.min_object_area is not None:
                default = np.where(zone.contains(ground), zone.min_object_area, default)
        return default


def _bar(by_light: np.ndarray, floor: float, daylight: float) -> np.ndarray:
    """Per pixel, the difference that counts: `by_light` (the bar falling with the light),
    never under `floor` (the noise's); a bright part keeps the daylight bar."""
    bar = np.maximum(by_light, floor)
    return np.minimum(bar, max(daylight, floor), out=bar)


def _relit(now: np.ndarray, then: np.ndarray, owners: np.ndarray, n: int) -> np.ndarray:
    """Per region (owners 1..n-1 of the pixels), whether the frame is the background's own
    texture under other light: their grey levels correlate and the background has texture
    to correlate (a flat road under a light pool is left to the light model)."""
    count = np.maximum(np.bincount(owners, minlength=n)[1:], 1)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(owners, weights=values, minlength=n)[1:] / count

    m_now, m_then = mean(now), mean(then)
    var_now = np.maximum(mean(now * now) - m_now**2, 0.0)
    var_then = np.maximum(mean(then * then) - m_then**2, 0.0)
    cov = mean(now * then) - m_now * m_then
    ncc = cov / np.sqrt(np.maximum(var_now * var_then, 1e-6))
    return (ncc >= RELIT_CORRELATION) & (var_then >= RELIT_TEXTURE**2)


def _median_by(values: np.ndarray, owners: np.ndarray, n: int, default: float) -> np.ndarray:
    """Per owner 1..n-1, the median of its finite values (`default` where it has none)."""
    timed = np.isfinite(values)
    values, owners = values[timed], owners[timed]
    out = np.full(n - 1, default, np.float64)
    if not len(values):
        return out
    order = np.lexsort((values, owners))
    values, owners = values[order], owners[order]
    counts = np.bincount(owners, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = np.flatnonzero(counts[1:] > 0) + 1
    out[has - 1] = values[starts[has] + counts[has] // 2]
    return out
