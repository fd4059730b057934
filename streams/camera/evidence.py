"""Evidence images: the incident's unaltered frames as JPEGs, content-hashed, with the site
box and label as metadata (`EvidenceRef.boxes`): drawn when shown, never into the evidence."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from api.contract import EvidenceBox, EvidenceRef
from api.contract.annotate import annotate
from detector.incidents import Incident


class EvidenceWriter:
    """Writes each incident's evidence once; the caller keeps the references (a live
    camera with its incidents' state, `score` with its cases).

    Shots are written as soon as an event reports them, then dropped from the incident,
    so a long run does not hold decoded frames in memory.
    """

    PREVIEWS = "annotated"  # subdirectory of the previews, when asked for

    def __init__(self, directory: Path, quality: int = 90, previews: bool = False) -> None:
        self.directory = directory
        self.quality = quality
        # Annotated copies beside the evidence, for a person looking at `score` output.
        self.previews = previews

    def write(self, incident: Incident, epoch: datetime) -> list[EvidenceRef]:
        """Writes the incident's pending shots; returns their references.

        All or nothing: if a write fails (a full disk), the shots stay pending and a later
        call writes them again.
        """
        written: list[EvidenceRef] = []
        for shot in incident.evidence:
            captured_at = epoch + timedelta(seconds=shot.pts)
            boxes = (
                []
                if shot.box is None
                else [
                    EvidenceBox(
                        bbox=[round(float(v), 1) for v in shot.box],
                        label=incident.class_name,
                        confidence=round(float(incident.confidence), 4),
                    )
                ]
            )
            data = self._encode(shot.image, incident.id)
            digest = hashlib.sha256(data).hexdigest()
            name = f"{incident.id}-{shot.kind}.jpg"
            if shot.kind == "plate":
                # A better read later is another file: never overwrite one the outbox sends.
                name = f"{incident.id}-plate-{digest[:12]}.jpg"
            path = self.directory / name
            write_atomic(path, data)
            if self.previews:
                when = captured_at.isoformat(timespec="seconds")
                caption = (
                    f"{incident.type} {incident.camera_id}/{incident.zone_id} {when} {shot.kind}"
                )
                preview = annotate(shot.image, boxes, caption)
                write_atomic(
                    self.directory / self.PREVIEWS / name, self._encode(preview, incident.id)
                )
            written.append(
                EvidenceRef(
                    kind=shot.kind,
                    path=str(path),
                    captured_at=captured_at,
                    sha256=digest,
                    boxes=boxes,
                )
            )
        incident.evidence.clear()
        return written

    def _encode(self, image: np.ndarray, incident_id: str) -> bytes:
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {incident_id}")
        return jpeg.tobytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Writes a file whole or not at all: a crash never leaves half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
