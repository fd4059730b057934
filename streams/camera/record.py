"""Evidence at full resolution: a camera watched through its sub-stream can name its main
stream as `record_source` (Frigate's `record` role). It is received only while the camera's
rules follow something (a candidate or open site: when an incident may be confirmed or
cleared), keyframes only, and the event's own evidence shot (confirmed, cleared) is then the
main stream's keyframe of the same moment, the box scaled from the detection stream's pixels.
Shots from earlier moments (first seen) and the dwell strip's thumbnails stay as the detection
stream saw them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from detector.incidents import EvidenceShot, IncidentEvent
from detector.types import Frame
from streams.sources.rtsp import RtspSource

log = logging.getLogger(__name__)

MAX_SKEW_S = 2.5  # a main-stream keyframe this close in capture time shows the same moment


def scaled_shot(shot: EvidenceShot, image: np.ndarray) -> EvidenceShot:
    """`shot` on `image`, the same view at another resolution: the box scaled to it."""
    h, w = shot.image.shape[:2]
    sy, sx = image.shape[0] / h, image.shape[1] / w
    box = shot.box * np.array([sx, sy, sx, sy], dtype=shot.box.dtype)
    return replace(shot, image=image, box=box)


class RecordStream:
    """One camera's main stream for evidence, open while `want(True)`."""

    def __init__(self, make_source: Callable[[], RtspSource]) -> None:
        self.make_source = make_source
        self.source: RtspSource | None = None
        self.latest: Frame | None = None  # the newest main-stream keyframe
        self.upgraded = 0  # shots replaced by a main-stream keyframe

    def want(self, needed: bool) -> None:
        """Opens the stream when needed, closes it (in the background) when not."""
        if needed and self.source is None:
            self.source = self.make_source()
            self.source.start()
        elif not needed and self.source is not None:
            self.source.stop(wait=False)
            self.source, self.latest = None, None
        self._drain()

    def _drain(self) -> None:
        if self.source is not None and (frame := self.source.latest(timeout=0)) is not None:
            self.latest = frame

    def matching(self, frame: Frame) -> Frame | None:
        """The main stream's keyframe of the same moment as `frame`, if there is one."""
        self._drain()
        main = self.latest
        if main is None or main.wall_time is None or frame.wall_time is None:
            return None
        return main if abs(main.wall_time - frame.wall_time) <= MAX_SKEW_S else None

    def upgrade(self, event: IncidentEvent, frame: Frame) -> None:
        """Replaces the event's shots of `frame` by the main stream's keyframe of the same
        moment, if there is one; otherwise they stay as the detection stream saw them."""
        main = self.matching(frame)
        if main is None:
            return
        shots = event.incident.evidence
        for i, shot in enumerate(shots):
            # A plate crop stays as read, a dwell thumbnail stays one.
            if shot.pts == frame.pts and shot.box is not None and shot.kind != "dwell":
                shots[i] = scaled_shot(shot, main.image)
                self.upgraded += 1

    def stop(self, wait: bool = True) -> None:
        if self.source is not None:
            self.source.stop(wait=wait)
            self.source = None
