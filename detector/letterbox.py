"""Letterboxing a batch of BGR frames into one preallocated NCHW float32 model input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114  # the grey YOLO models were trained with
_INV_255 = np.float32(1 / 255)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one image sits in the model input: input pixel = original * scale + pad."""

    scale: float
    pad_x: int
    pad_y: int
    width: int  # original image size, for clipping boxes mapped back
    height: int
    resized_w: int  # size of the image inside the model input
    resized_h: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map N x 4 xyxy boxes from input pixels back to the original image, in place."""
        boxes[:, 0::2] -= self.pad_x
        boxes[:, 1::2] -= self.pad_y
        boxes /= self.scale
        np.clip(boxes[:, 0::2], 0, self.width, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, self.height, out=boxes[:, 1::2])
        return boxes


def place(width: int, height: int, dst_w: int, dst_h: int) -> Placement:
    """Largest aspect-preserving fit of width x height into dst, centred."""
    scale = min(dst_w / width, dst_h / height)
    nw = min(dst_w, max(1, round(width * scale)))
    nh = min(dst_h, max(1, round(height * scale)))
    return Placement(scale, (dst_w - nw) // 2, (dst_h - nh) // 2, width, height, nw, nh)


class Letterboxer:
    """Reuses its buffers across calls (grown for larger batches); not thread-safe."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._canvas = np.empty((0, height, width, 3), np.uint8)
        self._tensor = np.empty((0, 3, height, width), np.float32)

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Placement]]:
        """Return a (B, 3, H, W) RGB [0, 1] view of the internal buffer and each placement."""
        b = len(images)
        if self._canvas.shape[0] < b:
            self._canvas = np.empty((b, self.height, self.width, 3), np.uint8)
            self._tensor = np.empty((b, 3, self.height, self.width), np.float32)
        canvas = self._canvas[:b]
        canvas.fill(PAD_VALUE)
        placements = []
        for img, slot in zip(images, canvas, strict=True):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(
                    f"expected an H x W x 3 uint8 BGR image, got {img.shape} {img.dtype}"
                )
            h, w = img.shape[:2]
            p = place(w, h, self.width, self.height)
            nw, nh = p.resized_w, p.resized_h
            dst = slot[p.pad_y : p.pad_y + nh, p.pad_x : p.pad_x + nw]
            if (nw, nh) == (w, h):
                dst[...] = img
            else:  # resize straight into the canvas slice, no intermediate image
                cv2.resize(img, (nw, nh), dst=dst, interpolation=cv2.INTER_LINEAR)
            placements.append(p)
        tensor = self._tensor[:b]
        # BGR->RGB, HWC->CHW and /255 in one pass, written into the preallocated tensor.
        np.multiply(canvas[..., ::-1].transpose(0, 3, 1, 2), _INV_255, out=tensor)
        return tensor, placements
