"""Offline scoring: every file camera of a config through its runtime, incidents out."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import av

from api.contract import CaseReport, EvidenceRef
from detector.incidents import Incident
from detector.motion import Submits, detect_stream, replay_stream
from detector.pipeline import Labels
from detector.types import Detections, Frame
from streams.camera.evidence import EvidenceWriter
from streams.camera.runtime import CameraRuntime, sampling_for
from streams.config import CameraConfig, Config
from streams.sources.files import FileSource, SourceError
from streams.sources.prefetch import prefetch
from streams.sources.sampling import FILE_LOOKAHEAD, SamplePlan

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CameraResult:
    camera_id: str
    frames: int = 0
    gated: int = 0  # frames that reused the previous detections (motion gate)
    scene_changes: int = 0  # lighting steps and camera moves the static stage re-seeded on
    seconds: float = 0.0
    cases: list[CaseReport] = field(default_factory=list)
    error: str | None = None


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


FrameHook = Callable[[Frame], None]


def score_camera(
    camera: CameraConfig,
    engine: Submits | None,
    config: Config,
    labels: Labels,
    evidence: EvidenceWriter,
    on_frame: FrameHook | None = None,
    inferred: Mapping[int, Detections] | None = None,
) -> CameraResult:
    """Scores one file camera: its cases, sorted. `inferred` holds detections made
    beforehand for every sampled frame (by index; a long file's chunks, inferred in
    parallel): the engine is then not used, and the results are the same."""
    result = CameraResult(camera.id)
    started = time.perf_counter()
    sampling = sampling_for(camera)
    # Decoding runs a fixed number of samples ahead of the rules, which decide what it samples:
    # the same file gives the same samples on any machine. The engine's frames in flight fit.
    plan = SamplePlan(sampling, lookahead=FILE_LOOKAHEAD)
    depth = min(2 * engine.parallel_runs, FILE_LOOKAHEAD) if engine else FILE_LOOKAHEAD
    source = FileSource(camera.id, camera.source, sampling, plan)
    try:
        runtime = CameraRuntime(camera, config, labels, plan)
        runtime.start(file_epoch(camera))
        assert runtime.epoch is not None
        epoch = runtime.epoch
        reports: dict[str, CaseReport] = {}
        refs: dict[str, list[EvidenceRef]] = {}  # each incident's evidence so far

        def report(incident: Incident) -> None:
            shots = refs.setdefault(incident.id, [])
            written = evidence.write(incident, epoch)
            if any(r.kind == "plate" for r in written):
                # A better plate read since the last report: a file's case shows its best.
                for old in [r for r in shots if r.kind == "plate"]:
                    shots.remove(old)
                    if old.sha256 not in {r.sha256 for r in written}:
                        Path(old.path).unlink(missing_ok=True)
            shots += written
            reports[incident.id] = runtime.report(incident, shots)

        frames = prefetch(source.frames())
        if inferred is None:
            assert engine is not None, "an engine, or detections inferred beforehand"
            stream = detect_stream(engine, frames, runtime.gate, depth)
        else:
            stream = replay_stream(inferred, frames, runtime.gate)
        for frame, detections in stream:
            events = runtime.process(frame, detections)
            runtime.read_plates(frame, events)
            for event in events:
                report(event.incident)
            result.scene_changes += len(runtime.take_scene_events())
            result.frames += 1
            if on_frame is not None:
                on_frame(frame)
        for incident in runtime.end():
            report(incident)  # still there when the video ends: cleared_at stays null
        result.cases = sorted(reports.values(), key=lambda r: (r.first_seen, r.id))
        result.gated = runtime.gate.skipped if runtime.gate else 0
    except SourceError as exc:
        result.error = str(exc)
    finally:
        plan.close()
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
