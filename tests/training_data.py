"""Reviewed cases with known ground truth, for the dataset and training tests.

Frames are real street footage (vtest.avi) with real photos pasted on (the bus of bus.jpg,
opencv-doc's cardboard box), so every box is known from how the frame was composed. Cases are
posted to the real intake API and reviewed there: accepted, rejected as false_detection,
one with the reviewer correcting the worker's box.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

import cv2
import httpx
import numpy as np

from api.contract import CaseReport, EvidenceBox, EvidenceRef
from models.samples import OPENCV_DATA
from tests.support.scenes import BUS_CROP, crop, paste, video_frames

DAYS = (
    datetime.fromisoformat("2026-05-01T09:00:00+08:00"),
    datetime.fromisoformat("2026-05-02T09:00:00+08:00"),
)
CAMERAS = ("cam-north", "cam-south")


@dataclass(frozen=True)
class Shot:
    image: bytes
    box: tuple[float, float, float, float] | None  # ground truth; None: nothing there


@dataclass(frozen=True)
class Made:
    """A posted case and what a reviewer did with it."""

    id: str
    camera: str
    day: int
    role: str  # "positive" | "negative" | "permitted"
    label: str | None  # the expected training label
    shots: tuple[Shot, Shot]
    truth: tuple[float, float, float, float] | None  # the box the labels must carry


class Composer:
    """Real frames with a sprite pasted at a known place."""

    def __init__(self, vtest_avi, bus_jpg) -> None:
        frames = video_frames(vtest_avi)
        self.frames = [next(frames) for _ in range(160)][::8]  # 20 distinct real frames
        self.bus = crop(bus_jpg, BUS_CROP, 220)
        self.heap = crop(OPENCV_DATA / "box.png", (0, 0, 324, 223), 90)
        self._n = itertools.count()

    def shot(self, sprite: np.ndarray | None, x: int, y: int) -> Shot:
        canvas = self.frames[next(self._n) % len(self.frames)].copy()
        box = None
        if sprite is not None:
            paste(canvas, sprite, x, y)
            h, w = canvas.shape[:2]
            box = (
                float(x),
                float(y),
                float(min(w, x + sprite.shape[1])),
                float(min(h, y + sprite.shape[0])),
            )
        ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        return Shot(jpeg.tobytes(), box)


def _post(
    client: httpx.Client,
    case_id: str,
    camera: str,
    start: datetime,
    kind: str,
    class_name: str,
    shots: tuple[Shot, Shot],
    worker_box,
    plate: str | None = None,
) -> str:
    refs, files = [], []
    for i, (shot, evidence_kind) in enumerate(zip(shots, ("first_seen", "confirmed"), strict=True)):
        name = f"{case_id}-{evidence_kind}.jpg"
        files.append(("evidence", (name, shot.image, "image/jpeg")))
        refs.append(
            EvidenceRef(
                kind=evidence_kind,
                path=f"/evidence/{name}",
                captured_at=start + timedelta(seconds=20 * i),
                sha256=hashlib.sha256(shot.image).hexdigest(),
                boxes=[EvidenceBox(bbox=list(worker_box), label=class_name, confidence=0.6)],
            )
        )
    report = CaseReport(
        id=case_id,
        type=kind,
        event_code="09009" if kind == "illegal_parking" else "06010",
        camera_id=camera,
        zone_id=case_id,  # a zone each: no merging into one case
        class_name=class_name,
        confidence=0.6,
        bbox=list(worker_box),
        first_seen=start,
        confirmed_at=start + timedelta(seconds=20),
        last_seen=start + timedelta(seconds=30),
        evidence=refs,
        plate=plate,
        plate_confidence=0.95 if plate else None,
    )
    parts = [("case", (None, report.model_dump_json(), "application/json")), *files]
    r = client.post("/v1/cases", files=parts, headers={"Idempotency-Key": case_id})
    assert r.status_code == 201, r.text
    return r.json()["case_id"]


def _move(client: httpx.Client, case_id: str, to: str, reason: str | None = None) -> None:
    body = {"to": to, "actor": "reviewer"} | ({"reason": reason} if reason else {})
    r = client.post(f"/v1/cases/{case_id}/transitions", json=body)
    assert r.status_code == 200, r.text


def make_reviewed_cases(
    ingest: httpx.Client, dispatch: httpx.Client, composer: Composer, per_scene: int = 3
) -> list[Made]:
    """Per camera and day: `per_scene` accepted buses (one with a corrected box), one accepted
    cardboard box (garbage, seen by the static stand-in), one false detection (pedestrians
    taken for a car), one permitted stall (rejected, but real: left out)."""
    made: list[Made] = []
    n = itertools.count()
    for day, start in enumerate(DAYS):
        for camera in CAMERAS:
            t = start + timedelta(hours=6 * CAMERAS.index(camera))  # an hour per case: none merge
            for i in range(per_scene):
                x, y = 40 + 140 * i, 300 + 20 * (i % 2)
                shots = (composer.shot(composer.bus, x, y), composer.shot(composer.bus, x, y))
                truth = shots[0].box
                corrected = i == 1
                worker = (
                    (truth[0] + 25, truth[1] - 15, truth[2] + 30, truth[3]) if corrected else truth
                )
                cid = f"{camera}-{day}-bus-{next(n)}"
                cid = _post(
                    ingest,
                    cid,
                    camera,
                    t + timedelta(hours=i),
                    "illegal_parking",
                    "bus",
                    shots,
                    worker,
                    plate=f"京{'ABC'[i % 3]}{day % 10}{CAMERAS.index(camera) % 10}345",
                )
                _move(dispatch, cid, "accepted")
                if corrected:
                    r = dispatch.put(f"/v1/cases/{cid}/box", json={"bbox": list(truth)})
                    assert r.status_code == 200, r.text
                made.append(Made(cid, camera, day, "positive", "bus", shots, truth))
            shots = (composer.shot(composer.heap, 520, 380), composer.shot(composer.heap, 520, 380))
            cid = f"{camera}-{day}-heap-{next(n)}"
            cid = _post(
                ingest,
                cid,
                camera,
                t + timedelta(hours=3),
                "garbage",
                "static object",
                shots,
                shots[0].box,
            )
            _move(dispatch, cid, "accepted")
            _move(dispatch, cid, "dispatched")  # further along the workflow: still accepted
            made.append(Made(cid, camera, day, "positive", "garbage", shots, shots[0].box))
            shots = (composer.shot(None, 0, 0), composer.shot(None, 0, 0))
            cid = f"{camera}-{day}-false-{next(n)}"
            cid = _post(
                ingest,
                cid,
                camera,
                t + timedelta(hours=4),
                "illegal_parking",
                "car",
                shots,
                (300, 150, 420, 330),
            )
            _move(dispatch, cid, "rejected", "false_detection")
            made.append(Made(cid, camera, day, "negative", None, shots, None))
            shots = (composer.shot(composer.heap, 100, 100), composer.shot(composer.heap, 100, 100))
            cid = f"{camera}-{day}-permitted-{next(n)}"
            cid = _post(
                ingest,
                cid,
                camera,
                t + timedelta(hours=5),
                "garbage",
                "static object",
                shots,
                shots[0].box,
            )
            _move(dispatch, cid, "rejected", "permitted")
            made.append(Made(cid, camera, day, "permitted", None, shots, None))
    return made


def read_labels(text: str, width: int, height: int) -> list[tuple[int, np.ndarray]]:
    """YOLO label lines back to (class, xyxy pixels)."""
    out = []
    for line in text.splitlines():
        c, cx, cy, w, h = line.split()
        cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        out.append((int(c), np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])))
    return out
