"""Parked vehicles with RENDERED Chinese plates, for the end-to-end plate tests.

The vehicle is the real bus of the model wheel's bus.jpg; its plate is drawn with a real CJK
font (tests/detector/plate_render.py) and warped onto the bus's side panel, where the plate
tests put it. Not photographs of plates: none ship in any package we may use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from tests.detector.plate_render import place_plate, render_plate
from tests.support.scenes import BUS_CROP, crop

PANEL = (430, 640)  # where the plate goes on bus.jpg (its side panel), in the photo's pixels


def plated_bus(bus_jpg: Path, width: int, text: str | None, plate_px: int) -> np.ndarray:
    """The bus scaled to `width` pixels with a rendered plate reading `text` (None: none)."""
    sprite = crop(bus_jpg, BUS_CROP, width)
    if text is None:
        return sprite
    s = width / (BUS_CROP[2] - BUS_CROP[0])
    centre = ((PANEL[0] - BUS_CROP[0]) * s, (PANEL[1] - BUS_CROP[1]) * s)
    image, _ = place_plate(sprite, render_plate(text), centre, plate_px)
    return image


def scaled(frames: Iterator[np.ndarray], factor: int) -> Iterator[np.ndarray]:
    """Real footage enlarged: a wider street, room for two large vehicles side by side."""
    for frame in frames:
        yield cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
