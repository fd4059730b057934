"""The data contracts that flow through the pipeline (see DESIGN.md, "Contracts")."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Observations for one frame, in the frame's own pixel coordinates.

    The engine fills boxes, scores and class ids; later stages add rows (a static object is a
    row with the static label's id) and per-row extras in `data` (as supervision does): the
    tracker's `track_id` and `stationary`, the static stage's `since`. Class ids index the
    camera's label list: the model's class names, then each stage's own labels.
    """

    boxes: np.ndarray  # N x 4 float32, xyxy
    scores: np.ndarray  # N float32
    class_ids: np.ndarray  # N int32
    data: dict[str, np.ndarray] = field(default_factory=dict)  # name -> N values

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
        return Detections(
            self.boxes.copy(),
            self.scores.copy(),
            self.class_ids.copy(),
            {k: v.copy() for k, v in self.data.items()},
        )

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.class_ids[index],
            {k: v[index] for k, v in self.data.items()},
        )

    def extra(self, name: str, fill: float | bool | int) -> np.ndarray:
        """The per-row extra `name`, or `fill` for every row where no stage set it."""
        found = self.data.get(name)
        return found if found is not None else np.full(len(self), fill)

    @classmethod
    def merge(cls, parts: list[Detections], fills: dict[str, float | bool | int]) -> Detections:
        """Rows of every part in order; an extra a part lacks takes its value from `fills`."""
        keys = {k for p in parts for k in p.data}
        return cls(
            np.concatenate([p.boxes for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.scores for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.class_ids for p in parts]).astype(np.int32, copy=False),
            {
                k: np.concatenate(
                    [p.data[k] if k in p.data else p.extra(k, fills[k]) for p in parts]
                )
                for k in keys
            },
        )

    @property
    def ground_points(self) -> np.ndarray:
        """Bottom-centre of each box (N x 2): where an object stands on the street."""
        return np.stack([(self.boxes[:, 0] + self.boxes[:, 2]) * 0.5, self.boxes[:, 3]], axis=1)
