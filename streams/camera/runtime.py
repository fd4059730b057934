"""A camera's runtime built from its config: sampling, motion gate, stages, zones and rules,
 its clock, and the mapping of its incidents to reports. `score` (files) and
`run` (live cameras) are thin loops around it, so both judge a picture the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np

from api.contract import CaseReport, EvidenceRef, IncidentType, Position
from detector.incidents import Incident, IncidentEvent
from detector.motion import MotionGate
from detector.pipeline import CameraPipeline, Labels, PipelineState
from detector.static_objects import SceneEvent
from detector.types import Detections, Frame
from detector.zones import Zone
from streams.camera.plates import CameraPlates, plate_reader, reads_plates
from streams.config import CameraConfig, Config
from streams.sources.sampling import GAP_SLACK, SamplePlan, SamplePolicy, Sampling, policy_for

log = logging.getLogger(__name__)


def sampling_for(camera: CameraConfig) -> Sampling:
    return Sampling(fps=camera.sample.fps, keyframes=camera.sample.keyframes)


def zones_of(camera: CameraConfig) -> list[Zone]:
    return [
        Zone(
            z.id,
            np.asarray(z.polygon, np.float32),
            frozenset(str(t) for t in z.checks),
            z.min_object_area,
        )
        for z in camera.zones
    ]


def warn_unchecked(
    runs: Iterable[tuple[CameraConfig, frozenset[IncidentType]]], labels: Labels, model: str
) -> None:
    """One line per zone check the model serves on a camera (`runs`: each with the types
    it serves there) but nothing can feed (a type the model lacks, stand-in off)."""
    for cam, served in runs:
        for zone in cam.zones:
            for t in zone.checks:
                if t in served and str(t) not in labels.specs:
                    log.warning(
                        "camera %s zone %s checks %s, but model %r has no class for it and its "
                        "stand-in is off: that check needs a trained model",
                        cam.id,
                        zone.id,
                        t,
                        model,
                    )


def describe(labels: Labels, model: str) -> str:
    """What feeds each incident type, for the start-up log."""
    parts = []
    for type_, spec in labels.specs.items():
        names = [labels.names[i] for i in sorted(spec.feeds)]
        parts.append(f"{type_} <- {', '.join(names)}")
    return f"model {model}: " + "; ".join(parts)


class CameraRuntime:
    """One camera, frame by frame: `start` it at its epoch (the wall time of media time
    zero), `process` each sample with its detections, map incidents with `report`. After
    each sample it tells `plan` (its source's) how long the rules can wait for the next."""

    def __init__(
        self, camera: CameraConfig, config: Config, labels: Labels, plan: SamplePlan | None = None
    ) -> None:
        self.camera = camera
        self.config = config
        self.labels = labels
        self.plan = plan
        self.policy: SamplePolicy | None = None
        self.gate = MotionGate() if config.detector.motion_gate else None
        self.pipeline: CameraPipeline | None = None
        self.epoch: datetime | None = None
        self.ground = camera.calibration.ground() if camera.calibration else None
        self.plates: CameraPlates | None = None  # made at the first read (read_plates)

    @property
    def started(self) -> bool:
        return self.pipeline is not None

    def start(self, epoch: datetime) -> None:
        self.epoch = epoch
        self.pipeline = CameraPipeline(
            self.camera.id,
            zones_of(self.camera),
            self.labels,
            epoch,
            static_params=self.config.detector.static_objects,
            max_gap_s=self.camera.sample.max_gap_s,
        )
        sample = self.camera.sample
        self.policy = policy_for(
            sampling_for(self.camera),
            sample.adaptive,
            sample.max_interval_s,
            [rule.spec.params for _, rule in self.pipeline.rules],
            self.pipeline.static.params if self.pipeline.static is not None else None,
        )

    def start_live(self, frame: Frame, now: float) -> None:
        """Starts at the first live frame: media time zero is its capture time less its pts."""
        self.start(datetime.fromtimestamp((frame.wall_time or now) - frame.pts, UTC))

    def process(self, frame: Frame, detections: Detections) -> list[IncidentEvent]:
        assert self.pipeline is not None and self.policy is not None, "start() the runtime first"
        if self.plan is None:
            return self.pipeline.process(frame, detections)
        # A step as long as the plan made it is observed time, not an outage.
        self.pipeline.set_max_gap(
            max(self.camera.sample.max_gap_s, GAP_SLACK * self.plan.planned_before(frame.pts))
        )
        events = self.pipeline.process(frame, detections)
        self.plan.settle(self.policy.interval(self.pipeline.busy))
        return events

    def read_plates(
        self, frame: Frame, events: list[IncidentEvent], main: np.ndarray | None = None
    ) -> None:
        """The plate stage on a processed sample: reads the plate of each confirmed parking
        incident it sees (on `main`, the main stream's image of the moment, when given),
        before its events are reported. Nothing when plates are not read (streams.camera.plates)."""
        if self.plates is None:
            if not reads_plates(self.camera) or not self.open_incidents():
                return
            reader = plate_reader(self.config)
            if reader is None:
                return
            self.plates = CameraPlates(reader)
        self.plates.read(frame, events, self.open_incidents(), main)

    def take_scene_events(self) -> list[SceneEvent]:
        """Scene changes seen since the last call (lighting steps, a moved camera)."""
        if self.pipeline is None:
            return []
        events, self.pipeline.scene_events = self.pipeline.scene_events, []
        return events

    def open_incidents(self) -> list[Incident]:
        return self.pipeline.open_incidents() if self.pipeline is not None else []

    def end(self) -> list[Incident]:
        """The input ended: the open incidents, their dwell strips complete (`score`)."""
        return self.pipeline.end() if self.pipeline is not None else []

    def snapshot(self, static: bool = True) -> PipelineState:
        assert self.pipeline is not None and self.epoch is not None
        return self.pipeline.snapshot(self.epoch.timestamp(), static)

    def restore(self, state: PipelineState) -> int:
        """Continues saved sites (a restarted worker); returns how many."""
        assert self.pipeline is not None and self.epoch is not None
        return self.pipeline.restore(state, self.epoch.timestamp())

    def at(self, pts: float | None) -> datetime | None:
        assert self.epoch is not None
        return None if pts is None else self.epoch + timedelta(seconds=pts)

    def _position(self, incident: Incident) -> Position | None:
        if self.ground is None:
            return None
        lat, lon = self.ground.ground_position(incident.box)
        return Position(lat=round(lat, 7), lon=round(lon, 7))

    def report(self, incident: Incident, evidence: Iterable[EvidenceRef]) -> CaseReport:
        """The incident as the intake API takes it."""
        vote = self.plates.result(incident.id) if self.plates is not None else None
        return CaseReport(
            id=incident.id,
            type=incident.type,
            event_code=self.config.event_codes.default_for(incident.type).code,
            camera_id=self.camera.id,
            zone_id=incident.zone_id,
            class_name=incident.class_name,
            confidence=incident.confidence,
            bbox=[round(float(v), 1) for v in incident.box],
            first_seen=self.at(incident.first_seen),
            confirmed_at=self.at(incident.confirmed_at),
            last_seen=self.at(incident.last_seen),
            cleared_at=self.at(incident.cleared_at),
            location=self.camera.location,
            position=self._position(incident),
            evidence=list(evidence),
            plate=vote.text if vote is not None else None,
            plate_confidence=round(vote.confidence, 4) if vote is not None else None,
        )
