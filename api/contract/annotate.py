"""Drawing what was seen onto a copy of an evidence image, only when it is shown.

The stored evidence is the unaltered frame (trustworthy, and usable as training data); its
boxes travel as metadata (`EvidenceBox`). One drawing for every viewer: the API's annotated
download and `streetwatch score`'s previews.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from api.contract.cases import EvidenceBox

BOX_COLOUR = (0, 0, 255)  # red, BGR: what the worker saw
REVIEWED_COLOUR = (0, 160, 0)  # green: a reviewer's correction


def _tag(image: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    scale = max(0.5, image.shape[0] / 1000)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, y - th - base - 4)
    cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
    cv2.putText(
        image, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1
    )


def _rect(image: np.ndarray, bbox: Sequence[float], colour: tuple[int, int, int]) -> int:
    x1, y1, x2, y2 = np.round(np.asarray(bbox, dtype=float)).astype(int).tolist()
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, max(2, image.shape[0] // 300))
    return x1, y1


def annotate(
    image: np.ndarray,
    boxes: Sequence[EvidenceBox],
    caption: str = "",
    reviewed: Sequence[float] | None = None,
) -> np.ndarray:
    """A copy of `image` with each box and its label, a reviewed box, and a caption."""
    out = image.copy()
    for box in boxes:
        x, y = _rect(out, box.bbox, BOX_COLOUR)
        conf = "" if box.confidence is None else f" {box.confidence:.2f}"
        _tag(out, f"{box.label}{conf}", x, y, BOX_COLOUR)
    if reviewed is not None:
        x, y = _rect(out, reviewed, REVIEWED_COLOUR)
        _tag(out, "reviewed", x, y, REVIEWED_COLOUR)
    if caption:
        _tag(out, caption, 0, out.shape[0], (0, 0, 0))
    return out


def annotate_jpeg(
    data: bytes,
    boxes: Sequence[EvidenceBox],
    caption: str = "",
    reviewed: Sequence[float] | None = None,
    quality: int = 90,
) -> bytes:
    """The annotated copy of an encoded image, as JPEG."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the image does not decode")
    ok, jpeg = cv2.imencode(
        ".jpg", annotate(image, boxes, caption, reviewed), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()
