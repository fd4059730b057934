"""A site's dwell strip: small frames sampled over its dwell, so a reviewer sees at a glance
that the object stayed and what happened around it.

Up to `DWELL_STRIP_MAX` (8) thumbnails, `THUMB_WIDTH` pixels wide, each with the site's box
as it was then (in the thumbnail's pixels):

- `BEFORE` (5) from first seen to confirmation, at observed dwell 0, 1/4, 1/2, 3/4 and the
  full `dwell_s` of the rule (the confirming frame): they go with the report;
- `AFTER` (3) over the rest of the dwell, from confirmation until cleared, kept evenly
  spread without knowing how long that is: samples sit on a grid of `dwell_s / 4` steps
  after confirmation; when a fourth is due the grid's step doubles and the samples off the
  new grid are dropped. The strip holds them until the clearing takes them (or, in `score`,
  the end of the video): the worker's observations in between never send one that a later
  thinning drops.

A sample is taken only from a frame the site is seen on, the first one at or past its grid
point; dwell is observed time, as the rules measure it. Memory stays bounded: at most 8
thumbnails per site, never a whole frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from api.contract import DWELL_STRIP_MAX
from detector.incidents import EvidenceShot
from detector.types import Frame

BEFORE = 5
AFTER = DWELL_STRIP_MAX - BEFORE
THUMB_WIDTH = 320
EPS = 1e-6  # dwell is a float sum: a grid point reached within this counts


def thumbnail(frame: Frame, box: np.ndarray) -> EvidenceShot:
    """The frame at most `THUMB_WIDTH` wide, with `box` scaled to it."""
    h, w = frame.image.shape[:2]
    if w <= THUMB_WIDTH:
        return EvidenceShot("dwell", frame.pts, frame.image, box.copy())
    scale = THUMB_WIDTH / w
    size = (THUMB_WIDTH, max(1, round(h * scale)))
    small = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
    sy = size[1] / h
    scaled = box * np.array([scale, sy, scale, sy], box.dtype)
    return EvidenceShot("dwell", frame.pts, small, scaled)


class DwellStrip:
    """The strip of one site. `before` fills while the site is a candidate and goes to its
    incident's evidence at confirmation; `after` holds the later samples (grid index, shot)
    until `take_after`."""

    __slots__ = (
        "after",
        "after_step",
        "before",
        "confirmed_dwelt",
        "next_after",
        "next_before",
        "step",
    )

    def __init__(self, dwell_s: float) -> None:
        self.step = dwell_s / (BEFORE - 1)
        self.before: list[EvidenceShot] = []
        self.next_before = 0
        self.after: list[tuple[int, EvidenceShot]] = []
        self.after_step = self.step
        self.next_after = 1
        self.confirmed_dwelt: float | None = None

    def offer(self, frame: Frame, box: np.ndarray, dwelt_s: float) -> None:
        """A frame the unconfirmed site is seen on, `dwelt_s` into its dwell."""
        due = int((dwelt_s + EPS) // self.step)
        if due >= self.next_before and len(self.before) < BEFORE:
            self.before.append(thumbnail(frame, box))
            self.next_before = due + 1

    def shots(self) -> list[EvidenceShot]:
        """The thumbnails the strip holds now."""
        return [*self.before, *(s for _, s in self.after)]

    def confirm(self, dwelt_s: float) -> list[EvidenceShot]:
        """The site confirmed `dwelt_s` into its dwell: the samples so far, for the report
        (the strip holds them no longer)."""
        self.confirmed_dwelt = dwelt_s
        shots, self.before = self.before, []
        return shots

    def take_after(self) -> list[EvidenceShot]:
        """The later samples, for the incident's evidence (the clearing, the end of a file)."""
        shots = [s for _, s in self.after]
        self.after = []
        return shots

    def offer_after(self, frame: Frame, box: np.ndarray, dwelt_s: float) -> None:
        """A frame the confirmed site is seen on: a sample if one is due (thinning the
        strip when it is full)."""
        assert self.confirmed_dwelt is not None
        since = dwelt_s - self.confirmed_dwelt + EPS
        if int(since // self.after_step) < self.next_after:
            return
        while len(self.after) >= AFTER:
            self.after_step *= 2
            self.after = [(k // 2, s) for k, s in self.after if k % 2 == 0]
            self.next_after = self.after[-1][0] + 1 if self.after else 1
        due = int(since // self.after_step)
        if due < self.next_after:
            return
        self.after.append((due, thumbnail(frame, box)))
        self.next_after = due + 1
