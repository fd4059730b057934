"""Motion gating: skip inference on frames that have not changed since the last inferred one.

Conservative by construction: a frame is compared with the last frame that was *inferred*
(so slow drift adds up instead of slipping through frame by frame), cell by cell on a coarse
grid (one changed cell re-runs inference), and inference runs at least every `max_skip_s` of
media time. A gated frame reuses the last detections under its own timestamp, so sites keep
being seen and dwell timers keep running.

`gate_batch` gates a batch across cameras (the live worker's, settled in order as each
batch's inference lands); `detect_stream` gates and pipelines one camera's frames (offline
scoring); `replay_stream` gates one camera's frames over detections inferred beforehand (a
long file's chunks, inferred in parallel).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from detector.types import Detections, Frame

GRID = (64, 36)  # cells across x down: ~30 px square on a 1080p frame
SUBSAMPLE = 4  # every 4th pixel feeds the cell means: enough to average out sensor noise


class Pending(Protocol):
    def result(self) -> Detections: ...
    def cancel(self) -> bool: ...


class Submits(Protocol):
    """What `detect_stream` infers on: an Engine, or a camera's models (a ModelMix)."""

    @property
    def parallel_runs(self) -> int: ...
    def submit(self, image: np.ndarray) -> Pending: ...


class MotionGate:
    """One per camera. `threshold` is the mean change, in 8-bit levels, that marks a cell."""

    def __init__(self, threshold: float = 6.0, max_skip_s: float = 2.0) -> None:
        self.threshold = threshold
        self.max_skip_s = max_skip_s
        self._thumb: np.ndarray | None = None
        self._inferred_at = float("-inf")
        # The detections of the last inferred frame, which the gated frames after it reuse;
        # the caller (GatedBatch.settle, detect_stream) stores them as each inference lands.
        self.detections = Detections.empty()
        self.skipped = 0

    @staticmethod
    def _thumbnail(image: np.ndarray) -> np.ndarray:
        small = image[::SUBSAMPLE, ::SUBSAMPLE]
        return cv2.resize(small, GRID, interpolation=cv2.INTER_AREA).astype(np.int16)

    def moved(self, frame: Frame) -> bool:
        """True if `frame` must be inferred: it then becomes the frame later ones are compared
        with. False if nothing moved since the last inferred frame (counted in `skipped`): the
        caller reuses that frame's detections."""
        thumb = self._thumbnail(frame.image)
        if (
            self._thumb is not None
            and thumb.shape == self._thumb.shape
            and frame.pts - self._inferred_at < self.max_skip_s
            and np.abs(thumb - self._thumb).max() < self.threshold
        ):
            self.skipped += 1
            return False
        self._thumb, self._inferred_at = thumb, frame.pts
        return True


@dataclass(slots=True)
class GatedBatch:
    """A batch across cameras split by the gates: `todo` (indices) to infer, the rest to reuse
    their gate's last inferred detections. Decided in order when made; `settle`d in the same
    order, so a frame gated behind one still in flight reuses that one's detections."""

    frames: Sequence[Frame]
    gates: Sequence[MotionGate | None]
    todo: list[int]

    def images(self) -> list[np.ndarray]:
        return [self.frames[i].image for i in self.todo]

    def settle(self, inferred: list[Detections]) -> list[Detections]:
        """Every frame's detections, given those of the `todo` frames."""
        by_index = dict(zip(self.todo, inferred, strict=True))
        found = []
        for i, gate in enumerate(self.gates):
            if i in by_index:
                if gate is not None:
                    gate.detections = by_index[i]
                found.append(by_index[i])
            else:
                assert gate is not None  # only gated frames are left out
                found.append(gate.detections.copy())
        return found


def gate_batch(frames: Sequence[Frame], gates: Sequence[MotionGate | None]) -> GatedBatch:
    """Which frames of a batch must be inferred (those that moved, or have no gate)."""
    pairs = zip(frames, gates, strict=True)
    todo = [i for i, (frame, gate) in enumerate(pairs) if gate is None or gate.moved(frame)]
    return GatedBatch(frames, gates, todo)


def detect_stream(
    engine: Submits,
    frames: Iterable[Frame],
    gate: MotionGate | None = None,
    depth: int | None = None,
) -> Iterator[tuple[Frame, Detections]]:
    """Each of one camera's frames with its detections, in order, pipelined: up to `depth`
    frames (default two per parallel run) are in flight on the engine's runs while the
    caller works on earlier ones, so no run waits for the others at a batch boundary.
    Frames the gate lets through are inferred; the rest reuse the detections of the last
    inferred frame before them."""
    depth = depth or 2 * engine.parallel_runs
    inflight: deque[tuple[Frame, Pending | None]] = deque()

    def settle() -> tuple[Frame, Detections]:
        frame, future = inflight.popleft()
        if future is None:  # gated: settled in order, so the gate holds the last inferred
            assert gate is not None
            return frame, gate.detections.copy()
        detections = future.result()
        if gate is not None:
            gate.detections = detections
        return frame, detections

    try:
        for frame in frames:
            inferred = gate is None or gate.moved(frame)
            inflight.append((frame, engine.submit(frame.image) if inferred else None))
            if len(inflight) >= depth:
                yield settle()
        while inflight:
            yield settle()
    finally:  # the caller stopped early or a run failed: drop the frames not yet started
        for _, future in inflight:
            if future is not None:
                future.cancel()


def replay_stream(
    inferred: Mapping[int, Detections],
    frames: Iterable[Frame],
    gate: MotionGate | None = None,
) -> Iterator[tuple[Frame, Detections]]:
    """`detect_stream` over detections inferred beforehand for every frame (by frame index):
    the gate decides as it would there, so gated frames reuse the last inferred frame's."""
    for frame in frames:
        if gate is None or gate.moved(frame):
            try:
                detections = inferred[frame.index]
            except KeyError:
                raise LookupError(f"no detections for frame {frame.index}") from None
            if gate is not None:
                gate.detections = detections
            yield frame, detections  # as detect_stream does: the gate holds this very object
        else:
            assert gate is not None
            yield frame, gate.detections.copy()
