"""Street scenes composed from real footage and real photos, for the demo and the tests.

A scene is a background (a real street video, looped, or a still photo) with sprites cut
from real photos moving over it on a timeline: a bus that drives in, parks and leaves, a
pedestrian crossing in front of it. Ground truth is known by construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

# Where the bus stands in the model wheel's samples/bus.jpg (810 x 1080), and the player
# on the left of samples/zidane.jpg (1280 x 720).
BUS_CROP = (0, 228, 810, 740)
PERSON_CROP = (100, 60, 560, 720)


@dataclass(frozen=True, slots=True)
class Move:
    """From time `t0` to `t1` a sprite's top-left corner goes from `start` to `end`."""

    t0: float
    t1: float
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(slots=True)
class Sprite:
    image: np.ndarray  # BGR
    moves: list[Move] = field(default_factory=list)  # hidden outside every move

    def position(self, t: float) -> tuple[int, int] | None:
        for m in self.moves:
            if m.t0 <= t < m.t1:
                a = (t - m.t0) / (m.t1 - m.t0)
                return (
                    round(m.start[0] + a * (m.end[0] - m.start[0])),
                    round(m.start[1] + a * (m.end[1] - m.start[1])),
                )
        return None

    def parked(self, t0: float, t1: float, at: tuple[float, float]) -> Sprite:
        self.moves.append(Move(t0, t1, at, at))
        return self

    def moving(self, t0: float, t1: float, start, end) -> Sprite:
        self.moves.append(Move(t0, t1, start, end))
        return self


def crop(photo: Path, box: tuple[int, int, int, int], width: int) -> np.ndarray:
    """Cuts `box` out of a photo and scales it to `width` pixels wide."""
    image = cv2.imread(str(photo))
    if image is None:
        raise FileNotFoundError(f"cannot read image {photo}")
    x1, y1, x2, y2 = box
    part = image[y1:y2, x1:x2]
    height = round(part.shape[0] * width / part.shape[1])
    return cv2.resize(part, (width, height), interpolation=cv2.INTER_AREA)


def video_frames(path: Path) -> Iterator[np.ndarray]:
    """A real video's frames as BGR, looped forever."""
    while True:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="bgr24")


def relit(
    frames: Iterator[np.ndarray], fps: float, at_s: float, gain: float
) -> Iterator[np.ndarray]:
    """The frames with their brightness multiplied by `gain` from `at_s` on: a lighting step
    (a cloud, street lights, auto-exposure)."""
    for i, frame in enumerate(frames):
        yield frame if i / fps < at_s else cv2.convertScaleAbs(frame, alpha=gain)


def panned(frames: Iterator[np.ndarray], fps: float, at_s: float, dx: int) -> Iterator[np.ndarray]:
    """The frames shifted `dx` pixels sideways from `at_s` on: a camera knocked or moved to
    another preset."""
    for i, frame in enumerate(frames):
        yield frame if i / fps < at_s else np.roll(frame, dx, axis=1)


def still_frames(image: np.ndarray) -> Iterator[np.ndarray]:
    while True:
        yield image


def paste(canvas: np.ndarray, sprite: np.ndarray, x: int, y: int) -> None:
    """Draws a sprite with its top-left at (x, y), clipped to the canvas."""
    h, w = canvas.shape[:2]
    sx1, sy1 = max(0, -x), max(0, -y)
    dx1, dy1 = max(0, x), max(0, y)
    dx2, dy2 = min(w, x + sprite.shape[1]), min(h, y + sprite.shape[0])
    if dx2 > dx1 and dy2 > dy1:
        canvas[dy1:dy2, dx1:dx2] = sprite[sy1 : sy1 + dy2 - dy1, sx1 : sx1 + dx2 - dx1]


def render(
    out: Path,
    background: Iterator[np.ndarray],
    duration_s: float,
    fps: int,
    sprites: Sequence[Sprite] = (),
    keyint_s: float = 2.0,
) -> Path:
    """Encodes the scene as H.264 MP4, sprites drawn in order (later ones in front)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "g": str(round(keyint_s * fps))}
        for i in range(round(duration_s * fps)):
            canvas = next(background).copy()
            if i == 0:
                stream.height, stream.width = canvas.shape[:2]
            t = i / fps
            for sprite in sprites:
                pos = sprite.position(t)
                if pos is not None:
                    paste(canvas, sprite.image, *pos)
            frame = av.VideoFrame.from_ndarray(canvas, format="bgr24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    tmp.replace(out)
    return out
