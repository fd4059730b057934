"""The plate reader: find Chinese licence plates, rectify them and read them, or refuse.

Two models from the plate set (models.plates, `streetwatch models fetch plates`), run through
ONNX Runtime with our own pre- and post-processing:

- the detector, a RetinaFace-style network: for every prior box (three feature strides) a box
  offset, a plate score and the four corners; decoded and NMS-ed here;
- the recogniser, a CRNN with a CTC head over 72 characters (digits, letters without I and O,
  province abbreviations and the special suffixes), fed one text row 32 pixels high.

Each detected plate is warped to an upright rectangle from its four corners. A plate whose
corners make it about 2:1 (a double-row yellow plate) is read as its two rows, top then
bottom; the detector's corners on such plates are loose (it was trained mostly on single
rows), so from detection they are more often refused than read. The reader refuses,
giving no text, when the plate is too small, too blurred, not confidently read character by
character, or not shaped like a Chinese plate number: a parking case names a vehicle, so a
guessed text is worse than none.

`PlateVote` combines the reads of one site over its dwell into the best-supported text;
`SitePlates` is the stage that keeps one vote per confirmed parking site.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache

import cv2
import numpy as np
import onnxruntime as ort

from models.errors import ModelError
from models.plates import PlateModels, load

# Detector: the priors it was trained with (two sizes per stride), the offset variances, and
# the mean subtracted from BGR pixels.
_STEPS = (8, 16, 32)
_MIN_SIZES = ((24, 48), (96, 192), (384, 768))
_VARIANCE = (0.1, 0.2)
_BGR_MEAN = np.array([104, 117, 123], np.float32)
_NMS_IOU = 0.4

# Rectified plate sizes (w, h): the standard 440 x 140 mm single-row plate (480 for the
# 8-character new-energy plate, the same height) and the 440 x 220 mm double-row plate.
_SINGLE = (220, 70)
_DOUBLE = (220, 110)
_DOUBLE_ASPECT = 2.6  # corner aspect below this: a double-row plate (2.0 vs 3.1 to 3.4)
_REC_HEIGHT = 32
# Text rows of a rectified plate, (y0, y1, x0, x1) as shares of its size: inside the plate's
# frame (which the recogniser, trained on text rows, misreads as characters) and the top and
# bottom of its characters' cells. Cut tighter, the province character is misread.
_ROWS = {
    1: ((0.2, 0.8, 0.03, 0.97),),
    2: ((0.05, 0.37, 0.2, 0.8), (0.4, 0.93, 0.04, 0.96)),
}

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# A Chinese plate number: province, issuing-office letter, then five characters (blue and
# yellow plates, the last possibly 学 警 挂 港 澳 领 使) or six (green new-energy plates).
PLATE_PATTERN = re.compile(
    rf"^[{PROVINCES}][A-HJ-NP-Z](?:[A-HJ-NP-Z0-9]{{4}}[A-HJ-NP-Z0-9学警挂港澳领使]"
    r"|[A-HJ-NP-Z0-9]{6})$"
)


class PlateColour(StrEnum):
    blue = "blue"  # ordinary cars: white characters on blue
    yellow = "yellow"  # large vehicles, coaches: black on yellow, often double-row
    green = "green"  # new-energy vehicles: black on green, eight characters
    unknown = "unknown"


class Refusal(StrEnum):
    """Why a detected plate gives no text."""

    too_small = "too_small"
    blurred = "blurred"
    unsure = "unsure"  # some character below the confidence floor
    malformed = "malformed"  # the text is not a plate number


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One detected plate on one image, in that image's pixel coordinates."""

    corners: np.ndarray  # 4 x 2 float32: top-left, top-right, bottom-right, bottom-left
    box: tuple[float, float, float, float]  # xyxy around the plate
    detection_score: float
    rows: int  # 1 or 2
    colour: PlateColour
    text: str | None  # None when refused
    char_confidences: tuple[float, ...]  # one per character of the recognised string
    confidence: float  # of the whole text: the product of its characters' (0 when refused)
    refusal: Refusal | None
    crop: np.ndarray = field(repr=False)  # the rectified plate, BGR: the `plate` evidence


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    # A detection below this is not a plate. Low: the detector scores green new-energy plates
    # 0.4 to 0.9; what is not a plate is refused by the recogniser's floors and the pattern.
    detection_score: float = 0.35
    min_width_px: float = 60.0  # narrower plates are too small to read (a 7-char plate)
    # Variance of the rectified plate's Laplacian below which it is blurred (opencv-doc's
    # motion-blurred plate: 8; sharp plates: 700 and up). JPEG blocking keeps it high on
    # blurred plates too: the character floor catches those.
    min_sharpness: float = 60.0
    # Every character must be at least this sure: on the rendered-plate sweep of the tests, no
    # wrong read reached 0.92 (one reached 0.90), while most large, sharp plates pass 0.95.
    min_char_confidence: float = 0.93
    # Larger images are scaled down for detection (a 1080p frame to 1280 x 720): a plate
    # readable at 60 px stays findable, and the detector's cost stays bounded.
    max_side: int = 1280


@lru_cache(maxsize=8)
def _priors(height: int, width: int) -> np.ndarray:
    """Prior boxes (cx, cy, w, h), relative to the image, in the order the network emits."""
    parts = []
    for step, sizes in zip(_STEPS, _MIN_SIZES, strict=True):
        rows, cols = -(-height // step), -(-width // step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height,
            (np.arange(cols) + 0.5) * step / width,
            indexing="ij",
        )
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1)
        # Per cell: one prior per size, the sizes adjacent (as the network's anchors are laid out).
        wh = np.array([[s / width, s / height] for s in sizes])
        cell = np.concatenate(
            [np.repeat(centres, len(sizes), axis=0), np.tile(wh, (len(centres), 1))], axis=1
        )
        parts.append(cell)
    return np.concatenate(parts).astype(np.float32)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by OpenCV's NMS (as detector.postprocess uses), best first."""
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    kept = np.asarray(cv2.dnn.NMSBoxes(xywh, scores, 0.0, iou), np.int64).reshape(-1)
    return kept[np.argsort(-scores[kept], kind="stable")]


def _order_corners(pts: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left, whatever order the network gave them."""
    s, d = pts.sum(axis=1), pts[:, 1] - pts[:, 0]
    return np.array([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]])


def _colour(crop: np.ndarray) -> PlateColour:
    """The plate's background colour: the hue most of its saturated pixels have."""
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hue = hsv[..., 0][(hsv[..., 1] > 80) & (hsv[..., 2] > 60)]
    if hue.size < 0.3 * crop.shape[0] * crop.shape[1]:
        return PlateColour.unknown
    h = float(np.median(hue))  # OpenCV hue: 0-180
    if 95 <= h <= 130:
        return PlateColour.blue
    if 15 <= h <= 35:
        return PlateColour.yellow
    if 35 < h < 95:
        return PlateColour.green
    return PlateColour.unknown


def check_image(image: np.ndarray) -> None:
    """Refuse what is not a BGR picture, with the reason, before any model sees it."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 BGR image, got {getattr(image, 'dtype', type(image))}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"expected an H x W x 3 BGR image, got shape {image.shape}")


def _length_fits(text: str, colour: PlateColour) -> bool:
    """A green plate has eight characters, a blue or yellow one seven: a row cut short by a
    misplaced corner still matches the pattern, and this catches it."""
    if colour is PlateColour.green:
        return len(text) == 8
    if colour in (PlateColour.blue, PlateColour.yellow):
        return len(text) == 7
    return True


class PlateReader:
    """Detect and read plates on BGR images (a vehicle's crop or a whole frame).

    Holds ONNX Runtime sessions: one reader per thread.
    """

    def __init__(self, models: PlateModels | None = None, config: ReaderConfig | None = None):
        self.models = models or load()
        self.config = config or ReaderConfig()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # per incident, not per sample: one core is plenty
        opts.inter_op_num_threads = 1
        cpu = ["CPUExecutionProvider"]
        self._det = ort.InferenceSession(str(self.models.detector), opts, providers=cpu)
        self._rec = ort.InferenceSession(str(self.models.recognizer), opts, providers=cpu)
        self._charset = np.array(["", *self.models.charset])  # CTC blank first
        classes = self._rec.get_outputs()[0].shape[-1]
        if classes != len(self._charset):
            raise ModelError(
                f"the plate recogniser has {classes} output classes but its character set "
                f"{self.models.recognizer.parent} has {len(self._charset) - 1} characters + "
                "blank; fetch the plate models again (streetwatch models fetch plates --force)"
            )

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(corners 4 x 2 in image pixels, score) of each plate, best first."""
        check_image(image)
        h, w = image.shape[:2]
        scale = min(1.0, self.config.max_side / max(h, w))
        if scale < 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), cv2.INTER_AREA)
        ih, iw = image.shape[:2]
        blob = (image.astype(np.float32) - _BGR_MEAN).transpose(2, 0, 1)[None]
        loc, conf, landms = self._det.run(None, {"image": blob})
        priors = _priors(ih, iw)
        scores = conf[0, :, 1]
        keep = scores > self.config.detection_score
        if not keep.any():
            return []
        p, loc, lm, scores = priors[keep], loc[0][keep], landms[0][keep], scores[keep]
        v0, v1 = _VARIANCE
        centre = p[:, :2] + loc[:, :2] * v0 * p[:, 2:]
        size = p[:, 2:] * np.exp(loc[:, 2:] * v1)
        to_px = np.array([iw, ih], np.float32) / scale
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * np.tile(to_px, 2)
        corners = (p[:, None, :2] + lm.reshape(-1, 4, 2) * v0 * p[:, None, 2:]) * to_px
        kept = _nms(boxes, scores, _NMS_IOU)
        return [(_order_corners(corners[i]).astype(np.float32), float(scores[i])) for i in kept]

    def _recognise(self, row: np.ndarray) -> tuple[str, tuple[float, ...]]:
        """Greedy CTC decoding of one text row: the text and each character's probability."""
        h, w = row.shape[:2]
        width = max(_REC_HEIGHT, round(w * _REC_HEIGHT / h))
        x = cv2.resize(row, (width, _REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
        x = (x.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        (probs,) = self._rec.run(None, {"x": x})
        best = probs[0].argmax(axis=1)
        conf = probs[0].max(axis=1)
        # A character is a run of one non-blank class; its confidence is the run's best frame.
        starts = np.flatnonzero(np.diff(best, prepend=-1))
        ends = np.append(starts[1:], len(best))
        chars, confs = [], []
        for s, e in zip(starts, ends, strict=True):
            if best[s] != 0:
                chars.append(self._charset[best[s]])
                confs.append(float(conf[s:e].max()))
        return "".join(chars), tuple(confs)

    def read_plate(self, image: np.ndarray, corners: np.ndarray, score: float) -> PlateRead:
        """Rectify and read the plate at `corners` on `image`."""
        c = corners.astype(np.float32)
        width = (np.linalg.norm(c[1] - c[0]) + np.linalg.norm(c[2] - c[3])) / 2
        height = (np.linalg.norm(c[3] - c[0]) + np.linalg.norm(c[2] - c[1])) / 2
        rows = 2 if width < _DOUBLE_ASPECT * height else 1
        size = _DOUBLE if rows == 2 else _SINGLE
        target = np.array([[0, 0], [size[0], 0], size, [0, size[1]]], np.float32)
        warp = cv2.getPerspectiveTransform(c, target)
        crop = cv2.warpPerspective(image, warp, size, flags=cv2.INTER_LINEAR)
        xs, ys = c[:, 0], c[:, 1]
        box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))

        colour = _colour(crop)

        def result(
            text: str | None, confs: tuple[float, ...], refusal: Refusal | None
        ) -> PlateRead:
            return PlateRead(
                corners=c,
                box=box,
                detection_score=score,
                rows=rows,
                colour=colour,
                text=text,
                char_confidences=confs,
                confidence=float(np.prod(confs)) if text else 0.0,
                refusal=refusal,
                crop=crop,
            )

        if width < self.config.min_width_px:
            return result(None, (), Refusal.too_small)
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        if cv2.Laplacian(grey, cv2.CV_64F).var() < self.config.min_sharpness:
            return result(None, (), Refusal.blurred)
        text, confs = "", ()
        for y0, y1, x0, x1 in _ROWS[rows]:
            w, h = size
            row_text, row_confs = self._recognise(
                crop[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
            )
            text, confs = text + row_text, confs + row_confs
        if not confs or min(confs) < self.config.min_char_confidence:
            return result(None, confs, Refusal.unsure)
        if not PLATE_PATTERN.match(text) or not _length_fits(text, colour):
            return result(None, confs, Refusal.malformed)
        return result(text, confs, None)

    def read(self, image: np.ndarray) -> list[PlateRead]:
        """Every plate detected on `image`, read or refused, best detection first."""
        return [self.read_plate(image, c, s) for c, s in self.detect(image)]


@dataclass(frozen=True, slots=True)
class VoteResult:
    text: str
    confidence: float  # the text's summed confidence over every read plate's (0-1)
    support: int  # reads that gave this text
    reads: int  # reads that gave any text
    best: PlateRead  # the most confident read of the text: its crop is the evidence


@dataclass
class PlateVote:
    """The plate of one site over its dwell: every sample's read of the site's vehicle.

    The winner is the text with the largest summed confidence; its confidence is that sum over
    the sum for all texts read, times its mean confidence, so that disagreement or hesitant
    reads both lower it. Refused reads add nothing: too few readable samples give no plate.
    """

    min_reads: int = 1
    min_confidence: float = 0.5
    _weights: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    _counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _best: dict[str, PlateRead] = field(default_factory=dict)

    def add(self, read: PlateRead) -> None:
        if read.text is None:
            return
        self._weights[read.text] += read.confidence
        self._counts[read.text] += 1
        if read.text not in self._best or read.confidence > self._best[read.text].confidence:
            self._best[read.text] = read

    def result(self) -> VoteResult | None:
        reads = sum(self._counts.values())
        if reads < self.min_reads:
            return None
        text = max(self._weights, key=self._weights.__getitem__)
        weight = self._weights[text]
        confidence = weight / sum(self._weights.values()) * weight / self._counts[text]
        if confidence < self.min_confidence:
            return None
        return VoteResult(text, confidence, self._counts[text], reads, self._best[text])


class SitePlates:
    """The plate stage of a camera: reads the confirmed vehicle of each parking site on the
    samples of its dwell and keeps a vote per site.

    The worker calls `observe` for every sample of a confirmed `illegal_parking` site (the
    vehicle's box on that sample's frame) and `close` when the site's incident is reported:
    its VoteResult gives the report's plate, plate confidence and `plate` evidence crop.
    """

    MARGIN = 0.1  # the vehicle's crop grows by this share of its size: a plate on its edge

    def __init__(self, reader: PlateReader, vote: Callable[[], PlateVote] = PlateVote) -> None:
        self.reader = reader
        self._new_vote = vote
        self._votes: dict[str, PlateVote] = {}

    def observe(self, site: str, image: np.ndarray, vehicle: np.ndarray) -> PlateRead | None:
        """Read the plate of the vehicle at `vehicle` (xyxy on `image`); the read, in the
        image's coordinates, is added to the site's vote. None when no plate is found on it."""
        h, w = image.shape[:2]
        x1, y1, x2, y2 = np.asarray(vehicle, np.float32)
        mx, my = (x2 - x1) * self.MARGIN, (y2 - y1) * self.MARGIN
        cx1, cy1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
        cx2, cy2 = int(min(w, x2 + mx)), int(min(h, y2 + my))
        if cx2 - cx1 < 2 or cy2 - cy1 < 2:
            return None
        vote = self._votes.setdefault(site, self._new_vote())
        for read in self.reader.read(image[cy1:cy2, cx1:cx2]):
            corners = read.corners + np.array([cx1, cy1], np.float32)
            centre = corners.mean(axis=0)
            if x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2:  # this vehicle's, not a neighbour's
                bx1, by1, bx2, by2 = read.box
                read = replace(
                    read, corners=corners, box=(bx1 + cx1, by1 + cy1, bx2 + cx1, by2 + cy1)
                )
                vote.add(read)
                return read
        return None

    def result(self, site: str) -> VoteResult | None:
        """The site's plate so far (None when no read was confident enough), kept open."""
        vote = self._votes.get(site)
        return vote.result() if vote is not None else None

    def sites(self) -> list[str]:
        return list(self._votes)

    def close(self, site: str) -> VoteResult | None:
        """The site's plate (None when no read was confident enough); forgets the site."""
        vote = self._votes.pop(site, None)
        return vote.result() if vote is not None else None
