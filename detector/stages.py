"""Detector stages: each turns a frame, and what the stages before it found, into observations.

The YOLO engine is the first stage (batched across cameras, so the caller runs it and hands
its detections in); the stages here run per camera after it, in order, each returning the rows
it adds and the extras it sets. A new stage (a trained classifier, a plate reader) is one more
class with `labels` and `process`, listed in `CameraPipeline`'s stages.
"""

from __future__ import annotations

from typing import Protocol

from detector.tracker import Tracker
from detector.types import Detections, Frame

# How long a tracked detection must stay near where it started to count as stationary, and
# how far (a share of its size) it may wander meanwhile.
STATIONARY_AFTER_S = 3.0
STATIONARY_MOVE = 0.5
# Someone who has stayed this long about one spot (`stay_s`) stays: a vendor with their goods,
# someone sitting; one there for less is passing by, however slowly.
STAYS_AFTER_S = 10.0
# A detection scoring this (the tracker's high score) is someone; a weaker one may be a thing
# the model half takes for a person (a pile of fruit, a sack), which then "stays" where it lies.
SURE_SCORE = 0.5


class Stage(Protocol):
    labels: tuple[str, ...]  # class names of the rows it adds, after the model's own

    def process(self, frame: Frame, found: Detections) -> Detections:
        """Rows to add to `found`; the stage may also set extras on `found` itself."""
        ...


class TrackingStage:
    """Track ids, whether each detection is stationary (`track_id`, `stationary`) and how
    long it has stayed about its current spot (`stay_s`), and the best score its track was
    ever seen with (`peak_score`)."""

    labels: tuple[str, ...] = ()

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def process(self, frame: Frame, found: Detections) -> Detections:
        ids = self.tracker.update(found, frame.pts)
        found.data["track_id"] = ids
        found.data["stationary"] = self.tracker.stationary(
            ids, frame.pts, STATIONARY_AFTER_S, STATIONARY_MOVE
        )
        found.data["stay_s"] = self.tracker.stays(ids, frame.pts)
        found.data["peak_score"] = self.tracker.peaks(ids)
        return Detections.empty()


# Values of the extras for rows whose stage did not set them.
EXTRA_FILLS: dict[str, float | bool | int] = {
    "track_id": 0,
    "stationary": False,
    "since": float("nan"),
    "occluded": False,
    "stay_s": 0.0,
    "peak_score": 0.0,
}
