"""Evidence images: the incident's frames as JPEGs with the site box drawn, content-hashed."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from api.contract import EvidenceRef
from detector.incidents import EvidenceShot, Incident

BOX_COLOUR = (0, 0, 255)  # red, BGR


def annotate(shot: EvidenceShot, label: str, caption: str) -> np.ndarray:
    """The frame with the site box, what was seen, and where and when it was captured."""
    image = shot.image.copy()
    x1, y1, x2, y2 = np.round(shot.box).astype(int).tolist()
    thickness = max(2, image.shape[0] // 300)
    cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
    scale = max(0.5, image.shape[0] / 1000)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(0, y1 - th - base - 4)
    cv2.rectangle(image, (x1, top), (x1 + tw + 4, top + th + base + 4), BOX_COLOUR, -1)
    cv2.putText(
        image, label, (x1 + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1
    )
    (cw, ch), cbase = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    bottom = image.shape[0] - 4
    cv2.rectangle(image, (0, bottom - ch - cbase - 4), (cw + 8, image.shape[0]), (0, 0, 0), -1)
    cv2.putText(
        image, caption, (4, bottom - cbase), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1
    )
    return image


class EvidenceWriter:
    """Writes each incident's evidence once and remembers the references.

    Shots are written as soon as an event reports them, then dropped from the incident,
    so a long run does not hold decoded frames in memory.
    """

    def __init__(self, directory: Path, quality: int = 90) -> None:
        self.directory = directory
        self.quality = quality
        self.refs: dict[str, list[EvidenceRef]] = {}

    def write(self, incident: Incident, epoch: datetime) -> list[EvidenceRef]:
        """Writes the incident's pending shots; returns all its references so far.

        All or nothing: if a write fails (a full disk), the shots stay pending and a later
        call writes them again.
        """
        written: list[EvidenceRef] = []
        label = f"{incident.type} {incident.class_name} {incident.confidence:.2f}"
        for shot in incident.evidence:
            captured_at = epoch + timedelta(seconds=shot.pts)
            when = captured_at.isoformat(timespec="seconds")
            caption = f"{incident.camera_id}/{incident.zone_id} {when} {shot.kind}"
            ok, jpeg = cv2.imencode(
                ".jpg", annotate(shot, label, caption), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
            )
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {incident.id}")
            data = jpeg.tobytes()
            path = self.directory / f"{incident.id}-{shot.kind}.jpg"
            write_atomic(path, data)
            written.append(
                EvidenceRef(
                    kind=shot.kind,
                    path=str(path),
                    captured_at=captured_at,
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        incident.evidence.clear()
        refs = self.refs.setdefault(incident.id, [])
        refs.extend(written)
        return refs

    def forget(self, incident_id: str) -> None:
        """Drops an incident's references once nothing more will be reported about it."""
        self.refs.pop(incident_id, None)


def write_atomic(path: Path, data: bytes) -> None:
    """Writes a file whole or not at all: a crash never leaves half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
