"""The data contracts that flow through the pipeline (see DESIGN.md, "Contracts")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    """One decoded picture from a camera or a file."""

    camera_id: str
    index: int  # source frame number, counted from the start of the stream
    pts: float  # media time in seconds from the first frame: what rules run on
    image: np.ndarray  # H x W x 3, BGR, uint8
    wall_time: float | None = None  # unix seconds when captured live; None offline

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(slots=True)
class Detections:
    """Detections for one frame, in the frame's own pixel coordinates."""

    boxes: np.ndarray  # N x 4 float32, xyxy
    scores: np.ndarray  # N float32
    class_ids: np.ndarray  # N int32

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int32),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def copy(self) -> Detections:
        """A copy to hand to another frame: boxes may be changed in place downstream."""
        return Detections(self.boxes.copy(), self.scores.copy(), self.class_ids.copy())

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])

    @property
    def ground_points(self) -> np.ndarray:
        """Bottom-centre of each box (N x 2): where an object stands on the street."""
        return np.stack([(self.boxes[:, 0] + self.boxes[:, 2]) * 0.5, self.boxes[:, 3]], axis=1)
