"""RENDERED Chinese licence plates for the plate tests: synthetic plates, not photographs.

No photographs of Chinese plates ship in any package we may use, so the tests draw plates
with a real CJK font (Debian's fonts-wqy-microhei) to the GA 36-2018 layout (characters
45 x 90 mm on a 440 x 140 mm plate, 480 mm for the 8-character new-energy plate, 440 x 220 mm
double-row plates) and warp them onto the real vehicles of real photos and footage.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
PX_PER_MM = 1.0  # plates are drawn at 1 px per mm

_COLOURS = {  # background, characters (RGB)
    "blue": ((20, 70, 180), (250, 250, 250)),
    "yellow": ((245, 190, 20), (10, 10, 10)),
    "green": ((110, 200, 120), (10, 10, 10)),
}


def _glyph(char: str, size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    """One character stretched to its cell, as plate characters are (narrow and tall)."""
    font = ImageFont.truetype(str(FONT), 200)
    left, top, right, bottom = font.getbbox(char)
    tile = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(tile).text((-left, -top), char, font=font, fill=255)
    mask = tile.resize(size, Image.LANCZOS)
    glyph = Image.new("RGBA", size, (*colour, 0))
    glyph.putalpha(mask)
    return glyph


def render_plate(text: str, colour: str = "blue", double: bool = False) -> np.ndarray:
    """A plate (BGR) reading `text`: 7 characters, 8 for green, double-row: 2 above 5."""
    background, ink = _COLOURS[colour]
    if double:
        width, height = 440, 220
        cells = [(110 + i * 140, 15, 80, 60) for i in range(2)]  # x, y, w, h
        cells += [(27 + i * 80, 90, 65, 110) for i in range(len(text) - 2)]
    else:
        eight = len(text) == 8
        width, height = (480, 140) if eight else (440, 140)
        char_w, pitch, gap = (43, 52, 49 - 9) if eight else (45, 57, 34)
        left = (width - (len(text) * pitch - (pitch - char_w) + gap)) // 2
        xs = [left + i * pitch + (gap if i >= 2 else 0) for i in range(len(text))]
        cells = [(x, 25, char_w, 90) for x in xs]
    plate = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle([3, 3, width - 4, height - 4], radius=10, outline=ink, width=3)
    if not double:  # the separating dot after the issuing office's letter
        x = cells[1][0] + cells[1][2] + (cells[2][0] - cells[1][0] - cells[1][2]) // 2
        draw.ellipse([x - 5, 65, x + 5, 75], fill=ink)
    for char, (x, y, w, h) in zip(text, cells, strict=True):
        plate.paste(_glyph(char, (w, h), ink), (x, y), _glyph(char, (w, h), ink))
    return cv2.cvtColor(np.asarray(plate), cv2.COLOR_RGB2BGR)


def place_plate(
    scene: np.ndarray,
    plate: np.ndarray,
    centre: tuple[float, float],
    width_px: float,
    yaw: float = 0.0,
    roll_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """`scene` with `plate` warped onto it (a copy) and the plate's four corners there.

    yaw: perspective foreshortening, the far edge's height over the near one's minus one.
    """
    h, w = plate.shape[:2]
    hp = width_px * h / w
    half = np.array(
        [[-width_px / 2, -hp / 2], [width_px / 2, -hp / 2 * (1 + yaw)],
         [width_px / 2, hp / 2 * (1 + yaw)], [-width_px / 2, hp / 2]]
    )  # fmt: skip
    a = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = (half @ rot.T + np.asarray(centre)).astype(np.float32)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(src, corners)
    size = (scene.shape[1], scene.shape[0])
    warped = cv2.warpPerspective(plate, matrix, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size) > 127
    out = scene.copy()
    out[mask] = warped[mask]
    return out, corners


def degrade(image: np.ndarray, blur_px: int = 0, jpeg_quality: int = 100) -> np.ndarray:
    """Horizontal motion blur over `blur_px` pixels, then a JPEG round trip."""
    if blur_px > 1:
        kernel = np.zeros((blur_px, blur_px), np.float32)
        kernel[blur_px // 2, :] = 1.0 / blur_px
        image = cv2.filter2D(image, -1, kernel)
    if jpeg_quality < 100:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        assert ok
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image
