"""De-identification: a rendition of an evidence image with heads and plates made unreadable.

Heads come from the detection model's own person boxes (the top of each box), plates from the
plate reader's detector run on the whole image. Each region is pixelated into a few blocks
and then blurred, so that neither a face nor a plate's characters survive (the plate tests
check that the plate reader finds nothing readable in a rendition). Pixels outside the regions
are left byte for byte as they were.

No face detector is used: OpenCV 5 (our opencv-python-headless) dropped the Haar cascades'
CascadeClassifier, and its YuNet detector needs a model file that no package we may use ships.
A head region is therefore taken generously (HEAD_SHARE of the person box, padded).

The incident's own objects (`keep`) are covered only where they must be: a region's padding
never reaches into a kept box; the region itself (a plate on the parked car) still is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from detector.plates import PlateReader, check_image

# The share of a person box, from its top, that holds the head: about 1/7 of a standing
# adult's height, taken at more than that for heads bent forward, children and loose boxes.
HEAD_SHARE = 0.25
PAD = 0.15  # each side of a region grows by this share of its size
BLOCKS = 5  # a region's shorter side is pixelated into this many blocks
MIN_SIDE = 4  # regions smaller than this (pixels) are grown to it: too few pixels to blur


class RegionKind(StrEnum):
    head = "head"
    plate = "plate"


@dataclass(frozen=True, slots=True)
class Region:
    box: tuple[int, int, int, int]  # xyxy, integer pixels, within the image; x2, y2 exclusive
    kind: RegionKind


@dataclass(frozen=True, slots=True)
class Deidentified:
    image: np.ndarray  # the rendition, BGR (a new array: the original is untouched)
    regions: tuple[Region, ...]  # what was obscured, for the report and the console


def _boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(boxes, np.float32)
    if array.size and (array.ndim != 2 or array.shape[1] != 4):
        raise ValueError(f"{what}: expected N x 4 xyxy boxes, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: boxes must be finite")
    return array.reshape(-1, 4)


def head_boxes(person_boxes: np.ndarray) -> np.ndarray:
    """The head part (N x 4, xyxy) of each person box: its top HEAD_SHARE."""
    boxes = np.asarray(person_boxes, np.float32).reshape(-1, 4).copy()
    boxes[:, 3] = boxes[:, 1] + (boxes[:, 3] - boxes[:, 1]) * HEAD_SHARE
    return boxes


def _overlaps(box: np.ndarray, keep: np.ndarray) -> bool:
    if keep.size == 0:
        return False
    return bool(
        (
            (np.minimum(box[2], keep[:, 2]) > np.maximum(box[0], keep[:, 0]))
            & (np.minimum(box[3], keep[:, 3]) > np.maximum(box[1], keep[:, 1]))
        ).any()
    )


def _regions(
    boxes: np.ndarray, kind: RegionKind, keep: np.ndarray, shape: tuple[int, ...]
) -> list[Region]:
    """Padded (unless the padding would reach a kept box), grown to MIN_SIDE, clipped."""
    h, w = shape[:2]
    found = []
    for box in boxes:
        size = box[2:] - box[:2]
        padded = np.concatenate([box[:2] - size * PAD, box[2:] + size * PAD])
        # Padding only where it does not reach the incident's box: a region near or on it
        # (a passer-by's head beside the car, the car's own plate) is taken as found.
        box = box if _overlaps(padded, keep) else padded
        grow = np.maximum(MIN_SIDE - (box[2:] - box[:2]), 0) / 2
        x1, y1 = np.floor(np.maximum(box[:2] - grow, 0)).astype(int)
        x2, y2 = np.ceil(np.minimum(box[2:] + grow, [w, h])).astype(int)
        if x2 > x1 and y2 > y1:
            found.append(Region((int(x1), int(y1), int(x2), int(y2)), kind))
    return found


def obscure(image: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Pixelate then blur `box` of `image` in place; nothing outside it changes."""
    x1, y1, x2, y2 = box
    patch = image[y1:y2, x1:x2]
    h, w = patch.shape[:2]
    block = max(1, -(-min(h, w) // BLOCKS))
    small = cv2.resize(
        patch, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA
    )
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    # Blurring the blocks removes their edges, which would otherwise carry the shape back.
    k = 2 * block + 1
    image[y1:y2, x1:x2] = cv2.GaussianBlur(coarse, (k, k), 0, borderType=cv2.BORDER_REPLICATE)


class Deidentifier:
    """Make renditions of evidence images. plates: a PlateReader to find plates with (its
    detector only: nothing is read), or None to obscure heads only."""

    def __init__(self, plates: PlateReader | None = None) -> None:
        self.plates = plates

    def __call__(
        self,
        image: np.ndarray,
        person_boxes: np.ndarray,
        keep: np.ndarray | None = None,
    ) -> Deidentified:
        """image: BGR evidence; person_boxes: N x 4 xyxy from the detection model; keep:
        M x 4 xyxy of the incident's own objects, not to be covered beyond what must be."""
        check_image(image)
        kept = _boxes(np.zeros((0, 4)) if keep is None else keep, "keep")
        person_boxes = _boxes(person_boxes, "person_boxes")
        regions = _regions(head_boxes(person_boxes), RegionKind.head, kept, image.shape)
        if self.plates is not None:
            corners = [c for c, _ in self.plates.detect(image)]
            plate_boxes = np.array(
                [[*c.min(axis=0), *c.max(axis=0)] for c in corners], np.float32
            ).reshape(-1, 4)
            regions += _regions(plate_boxes, RegionKind.plate, kept, image.shape)
        rendition = image.copy()
        for region in regions:
            obscure(rendition, region.box)
        return Deidentified(rendition, tuple(regions))
