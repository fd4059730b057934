"""The plate stage of a camera's runtime: the licence plate of each confirmed parking site.

Only confirmed `illegal_parking` incidents are read, on the samples that see their vehicle
(and on the confirming sample's first-seen frame) until their plate is settled, never every
sample of every camera. Each
read goes into the site's vote (detector.plates.SitePlates); the report carries the vote's
text and confidence and the best read's crop as `plate` evidence. A plate too small, blurred
or hidden gives no read, and a site without a confident vote reports no plate.

`detector.plates` in the config decides whether plates are read: `auto` when the plate
models are fetched, `on` always (a missing model stops the start with the command to fetch
it), `off` never. A reader holds ONNX Runtime sessions: one per thread, loaded once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from api.contract import IncidentType
from detector.incidents import EvidenceShot, Incident, IncidentEvent
from detector.plates import PlateRead, PlateReader, SitePlates, VoteResult
from detector.types import Frame
from models.errors import ModelNotFoundError
from models.plates import load, plates_dir
from streams.config import CameraConfig, Config

log = logging.getLogger(__name__)

# A site's plate is settled once this many reads agree on the winning text: a car parked for
# hours is not read on every sample. And however unreadable its plate, a site is tried at
# most MAX_ATTEMPTS times: each read costs about 0.4 of one sample's inference (RESULTS.md).
SETTLED_SUPPORT = 5
MAX_ATTEMPTS = 40

_local = threading.local()  # this thread's readers by model directory (False: none there)


def reads_plates(camera: CameraConfig) -> bool:
    return any(IncidentType.illegal_parking in z.checks for z in camera.zones)


def check_plates(config: Config, cameras: Iterable[CameraConfig]) -> None:
    """Says once, at start, whether plates will be read: with `on`, missing plate models
    raise ModelNotFoundError (the caller refuses to start); with `auto`, a warning."""
    setting = config.detector.plates
    if setting == "off" or not any(reads_plates(c) for c in cameras):
        return
    try:
        load()
    except ModelNotFoundError as exc:
        if setting == "on":
            raise ModelNotFoundError(f"detector.plates is on, but {exc}") from exc
        log.warning("parking cases will carry no plate: %s", exc)
        return
    log.info("plates: read on confirmed illegal_parking sites")


def plate_reader(config: Config) -> PlateReader | None:
    """This thread's reader, or None when plates are off or (`auto`) not fetched."""
    setting = config.detector.plates
    if setting == "off":
        return None
    readers: dict[Path, PlateReader | bool] = _local.__dict__.setdefault("readers", {})
    where = plates_dir()
    reader = readers.get(where)
    if reader is None:
        try:
            reader = PlateReader()
        except ModelNotFoundError:
            if setting == "on":
                raise
            reader = False
        readers[where] = reader
    return reader or None


class CameraPlates:
    """One camera's plate votes, by incident id, and each incident's pending `plate` shot."""

    def __init__(self, reader: PlateReader) -> None:
        self.stage = SitePlates(reader)
        self._shown: dict[str, PlateRead] = {}  # the read each incident's plate shot shows
        self._attempts: dict[str, int] = {}  # reads tried per incident

    def read(
        self,
        frame: Frame,
        events: Iterable[IncidentEvent],
        open_incidents: Iterable[Incident],
        main: np.ndarray | None = None,
    ) -> None:
        """Reads the plate of each open parking incident seen on `frame` (on `main`, the
        main stream's image of the same moment, when there is one), and of each incident
        confirmed on it also on its first-seen frame."""
        incidents = {i.id: i for i in open_incidents if i.type == IncidentType.illegal_parking}
        for event in events:
            incident = event.incident
            if event.kind == "confirmed" and incident.id in incidents:
                for shot in incident.evidence:
                    if shot.kind == "first_seen" and shot.box is not None:
                        self._read(incident, shot.image, shot.box, shot.pts)
        for site in self.stage.sites():  # incidents no longer open: reported already
            if site not in incidents and not any(e.incident.id == site for e in events):
                self.stage.close(site)
                self._shown.pop(site, None)
                self._attempts.pop(site, None)
        for incident in incidents.values():
            if incident.last_seen != frame.pts or self.settled(incident.id):
                continue  # not seen on this sample (occluded, or gone), or read enough
            image, box = frame.image, incident.box
            if main is not None:
                sy, sx = main.shape[0] / image.shape[0], main.shape[1] / image.shape[1]
                image, box = main, box * np.array([sx, sy, sx, sy], np.float32)
            self._read(incident, image, box, frame.pts)

    def _read(self, incident: Incident, image: np.ndarray, box: np.ndarray, pts: float) -> None:
        read = self.stage.observe(incident.id, image, box)
        self._attempts[incident.id] = self._attempts.get(incident.id, 0) + 1
        self._show(incident, read, pts)

    def settled(self, incident_id: str) -> bool:
        """Whether the incident's plate needs no more reads."""
        if self._attempts.get(incident_id, 0) >= MAX_ATTEMPTS:
            return True
        vote = self.stage.result(incident_id)
        return vote is not None and vote.support >= SETTLED_SUPPORT

    def _show(self, incident: Incident, read: PlateRead | None, pts: float) -> None:
        """Keeps the best read's crop as the incident's one pending `plate` shot."""
        vote = self.stage.result(incident.id)
        if vote is None or self._shown.get(incident.id) is vote.best:
            return
        self._shown[incident.id] = vote.best
        # Captured now, unless the text that wins holds an earlier read as its best.
        when = pts if vote.best is read else incident.confirmed_at
        shot = EvidenceShot("plate", when, vote.best.crop, None)
        incident.evidence[:] = [s for s in incident.evidence if s.kind != "plate"] + [shot]

    def result(self, incident_id: str) -> VoteResult | None:
        return self.stage.result(incident_id)
