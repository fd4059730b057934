"""Offline scoring: every file camera of a config through the detector, incidents out."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from api.contract import CaseReport, EvidenceRef
from detector.engine import Engine
from detector.incidents import Incident
from detector.motion import MotionGate, detect_stream
from detector.pipeline import CameraPipeline, rule_specs
from detector.rules import RuleSpec
from detector.zones import Zone
from streams.config import CameraConfig, Config
from streams.evidence import EvidenceWriter
from streams.prefetch import prefetch
from streams.sources import FileSource, Sampling, SourceError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CameraResult:
    camera_id: str
    frames: int = 0
    gated: int = 0  # frames that reused the previous detections (motion gate)
    seconds: float = 0.0
    cases: list[CaseReport] = field(default_factory=list)
    error: str | None = None


def zones_of(camera: CameraConfig) -> list[Zone]:
    return [
        Zone(z.id, np.asarray(z.polygon, np.float32), frozenset(str(t) for t in z.checks))
        for z in camera.zones
    ]


def camera_pipeline(
    camera: CameraConfig, specs: dict[str, RuleSpec], class_names: list[str], epoch: datetime
) -> CameraPipeline:
    """A camera's tracker, zones and rules, as both `score` and the live worker run them."""
    return CameraPipeline(
        camera.id,
        zones_of(camera),
        specs,
        class_names,
        epoch,
        max_gap_s=camera.sample.max_gap_s,
    )


def sampling_for(camera: CameraConfig) -> Sampling:
    return Sampling(fps=camera.sample.fps, keyframes=camera.sample.keyframes)


def gate_for(config: Config) -> MotionGate | None:
    """A camera's own motion gate, if the config turns gating on."""
    return MotionGate() if config.detector.motion_gate else None


def engine_for(config: Config) -> Engine:
    """The engine as the config's `model` and `detector` settings ask for it."""
    return Engine(
        config.model,
        conf_threshold=config.detector.conf_threshold,
        iou_threshold=config.detector.iou_threshold,
        rect=config.detector.rect,
        parallel_runs=config.detector.parallel_runs,
    )


def specs_for(engine: Engine, config: Config) -> dict[str, RuleSpec]:
    m = engine.manifest
    params = {name: getattr(config.rules, name) for name in type(config.rules).model_fields}
    return rule_specs(
        m.class_names, dict(m.incident_classes), list(m.stall_attendant_classes), params
    )


def warn_unchecked(cameras: list[CameraConfig], specs: dict[str, RuleSpec], model: str) -> None:
    for cam in cameras:
        for zone in cam.zones:
            for t in zone.checks:
                if str(t) not in specs:
                    log.warning(
                        "camera %s zone %s checks %s, but model %r has no class for it: "
                        "that check needs a trained model",
                        cam.id,
                        zone.id,
                        t,
                        model,
                    )


def file_epoch(camera: CameraConfig) -> datetime:
    """Wall time of a file's first frame: `start_time`, else the file's own creation time."""
    if camera.start_time is not None:
        return camera.start_time
    path = Path(camera.source)
    try:
        with av.open(str(path)) as container:
            created = container.metadata.get("creation_time")
        if created:
            return datetime.fromisoformat(created.replace("Z", "+00:00"))
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    log.warning("camera %s: no start_time; using the file's modification time", camera.id)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def to_report(
    incident: Incident,
    camera: CameraConfig,
    config: Config,
    epoch: datetime,
    evidence: list[EvidenceRef],
) -> CaseReport:
    def at(pts: float | None) -> datetime | None:
        return None if pts is None else epoch + timedelta(seconds=pts)

    return CaseReport(
        id=incident.id,
        type=incident.type,
        event_code=config.event_codes.default_for(incident.type).code,
        camera_id=camera.id,
        zone_id=incident.zone_id,
        class_name=incident.class_name,
        confidence=incident.confidence,
        bbox=[round(float(v), 1) for v in incident.box],
        first_seen=at(incident.first_seen),
        confirmed_at=at(incident.confirmed_at),
        last_seen=at(incident.last_seen),
        cleared_at=at(incident.cleared_at),
        location=camera.location,
        evidence=list(evidence),
    )


ProgressFactory = Callable[[CameraConfig, float | None], tqdm]


def default_progress(camera: CameraConfig, duration: float | None) -> tqdm:
    return tqdm(
        total=round(duration, 1) if duration else None,
        desc=camera.id,
        unit="s",
        unit_scale=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s of video "
        "[{elapsed}<{remaining}, {rate_fmt}]",
        leave=False,
        disable=None,
    )


def score_camera(
    camera: CameraConfig,
    engine: Engine,
    config: Config,
    specs: dict[str, RuleSpec],
    evidence: EvidenceWriter,
    progress: ProgressFactory = default_progress,
) -> CameraResult:
    result = CameraResult(camera.id)
    started = time.perf_counter()
    source = FileSource(camera.id, camera.source, sampling_for(camera))
    try:
        epoch = file_epoch(camera)
        pipeline = camera_pipeline(camera, specs, engine.class_names, epoch)
        reports: dict[str, CaseReport] = {}
        gate = gate_for(config)

        def report(incident: Incident) -> None:
            refs = evidence.write(incident, epoch)
            reports[incident.id] = to_report(incident, camera, config, epoch, refs)

        with progress(camera, source.duration_s()) as bar:
            for frame, detections in detect_stream(engine, prefetch(source.frames()), gate):
                for event in pipeline.process(frame, detections):
                    report(event.incident)
                result.frames += 1
                bar.update(frame.pts - bar.n)
        for incident in pipeline.open_incidents():
            report(incident)  # still there when the video ends: cleared_at stays null
        result.cases = sorted(reports.values(), key=lambda r: (r.first_seen, r.id))
        result.gated = gate.skipped if gate else 0
    except SourceError as exc:
        result.error = str(exc)
    result.seconds = time.perf_counter() - started
    return result


def write_jsonl(path: Path, reports: list[CaseReport]) -> None:
    """Writes all reports at once, atomically: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in reports:
            fh.write(json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
