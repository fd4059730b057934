"""Motion gating: skip inference on frames that have not changed since the last inferred one.

Conservative by construction: a frame is compared with the last frame that was *inferred*
(so slow drift adds up instead of slipping through frame by frame), cell by cell on a coarse
grid (one changed cell re-runs inference), and inference runs at least every `max_skip_s` of
media time. A gated frame reuses the last detections under its own timestamp, so sites keep
being seen and dwell timers keep running.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from detector.types import Detections, Frame

GRID = (64, 36)  # cells across x down: ~30 px square on a 1080p frame
SUBSAMPLE = 4  # every 4th pixel feeds the cell means: enough to average out sensor noise


class MotionGate:
    """One per camera. `threshold` is the mean change, in 8-bit levels, that marks a cell."""

    def __init__(self, threshold: float = 6.0, max_skip_s: float = 2.0) -> None:
        self.threshold = threshold
        self.max_skip_s = max_skip_s
        self._thumb: np.ndarray | None = None
        self._detections = Detections.empty()
        self._inferred_at = float("-inf")
        self._pending: tuple[np.ndarray, float] | None = None
        self.skipped = 0

    @staticmethod
    def _thumbnail(image: np.ndarray) -> np.ndarray:
        small = image[::SUBSAMPLE, ::SUBSAMPLE]
        return cv2.resize(small, GRID, interpolation=cv2.INTER_AREA).astype(np.int16)

    def reuse(self, frame: Frame) -> Detections | None:
        """The last detections if nothing moved since the last inferred frame; else None,
        and the caller runs inference on `frame` and hands the result to `inferred`."""
        thumb = self._thumbnail(frame.image)
        if (
            self._thumb is not None
            and thumb.shape == self._thumb.shape
            and frame.pts - self._inferred_at < self.max_skip_s
            and np.abs(thumb - self._thumb).max() < self.threshold
        ):
            self.skipped += 1
            d = self._detections
            return Detections(d.boxes.copy(), d.scores.copy(), d.class_ids.copy())
        self._pending = (thumb, frame.pts)
        return None

    def inferred(self, detections: Detections) -> None:
        assert self._pending is not None, "inferred() follows a reuse() that returned None"
        self._thumb, self._inferred_at = self._pending
        self._detections = detections


def detect_gated(
    detect: Callable[[list[np.ndarray]], list[Detections]],
    frames: Sequence[Frame],
    gates: Sequence[MotionGate | None],
) -> list[Detections]:
    """Detections for each frame: one batched `detect` call for the frames that moved (or
    have no gate), the gate's last detections for the rest."""
    found: list[Detections | None] = [
        None if gate is None else gate.reuse(frame)
        for frame, gate in zip(frames, gates, strict=True)
    ]
    todo = [i for i, d in enumerate(found) if d is None]
    for i, detections in zip(todo, detect([frames[i].image for i in todo]), strict=True):
        found[i] = detections
        if (gate := gates[i]) is not None:
            gate.inferred(detections)
    return found  # type: ignore[return-value]  # every slot is filled by now
