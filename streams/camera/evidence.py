"""Evidence images: the incident's unaltered frames as JPEGs (its dwell strip's thumbnails,
detector/strip.py, among them), content-hashed, with the site box and label as metadata
(`EvidenceRef.boxes`): drawn when shown, never into the evidence.

Beside each original, a de-identified rendition (`EvidenceRef.deidentified`): the same frame
with the heads of the people the model found on it, and the plates the plate detector finds,
obscured (detector.deidentify). Made once per evidence image, when it is written; what the
API hands to public outputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from api.contract import EvidenceBox, EvidenceRef, Rendition
from api.contract.annotate import annotate
from detector.deidentify import Deidentifier
from detector.incidents import EvidenceShot, Incident
from detector.plates import PlateReader
from models.errors import ModelError

log = logging.getLogger(__name__)

RENDITION_SUFFIX = ".deid.jpg"  # beside `<incident>-<kind>.jpg`


def deidentifier() -> Deidentifier:
    """Heads and plates when the plate models are installed, else heads only (said once)."""
    try:
        return Deidentifier(PlateReader())
    except ModelError as exc:
        log.warning(
            "de-identified evidence obscures heads only: the plate models are not installed "
            "(%s); `streetwatch models fetch plates` adds plates",
            exc,
        )
        return Deidentifier(None)


class EvidenceWriter:
    """Writes each incident's evidence once; the caller keeps the references (a live
    camera with its incidents' state, `score` with its cases).

    Shots are written as soon as an event reports them, then dropped from the incident,
    so a long run does not hold decoded frames in memory.
    """

    PREVIEWS = "annotated"  # subdirectory of the previews, when asked for

    def __init__(
        self,
        directory: Path,
        quality: int = 90,
        previews: bool = False,
        deidentify: Deidentifier | None = None,
    ) -> None:
        self.directory = directory
        self.quality = quality
        # Annotated copies beside the evidence, for a person looking at `score` output.
        self.previews = previews
        # None: no renditions (tests and tools that never post); workers and `score` pass one.
        self.deidentify = deidentify

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
            elif shot.kind == "dwell":  # a strip has several: named by their media time
                name = f"{incident.id}-dwell-{round(shot.pts * 1000):012d}.jpg"
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
                    deidentified=self._rendition(shot, path, incident.id),
                )
            )
        incident.evidence.clear()
        return written

    def _rendition(self, shot: EvidenceShot, original: Path, incident_id: str) -> Rendition | None:
        """The shot's de-identified rendition, written beside `original`; None without a
        de-identifier, or when the shot's people are unknown (then public outputs get no
        image of it rather than one with faces)."""
        if self.deidentify is None or shot.box is None:
            # No box: the image is the object itself (a plate crop), dispatch-only proof that
            # never leaves in public outputs, so it has nothing to de-identify around.
            return None
        if shot.people is None:
            log.warning(
                "%s: no rendition of its %s evidence: the people on it are unknown (a site "
                "restored from state saved before renditions)",
                incident_id,
                shot.kind,
            )
            return None
        done = self.deidentify(shot.image, shot.people, keep=np.asarray(shot.box)[None])
        data = self._encode(done.image, incident_id)
        path = original.with_name(original.name.removesuffix(".jpg") + RENDITION_SUFFIX)
        write_atomic(path, data)
        return Rendition(path=str(path), sha256=hashlib.sha256(data).hexdigest())

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
