"""Scoring many recordings: one job per file, each job's cases kept as a part on disk as it
finishes (so a re-run skips what is done), the parts merged in job order at the end, so the
output does not depend on where or in which order the files were scored. The jobs run here,
one after the other (`run_local`), or fan out on Ray (`streams.offline.ray_batch`)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
from pydantic import ValidationError

from api.contract import CaseReport
from detector.motion import Submits
from detector.pipeline import Labels
from detector.types import Detections
from streams.camera.evidence import EvidenceWriter, deidentifier
from streams.camera.model_set import ModelSet
from streams.config import Config
from streams.offline.scoring import CameraResult, FrameHook, score_camera, write_jsonl
from streams.sources.files import FileSource, SourceError
from streams.sources.recordings import Recording

log = logging.getLogger(__name__)
Tick = Callable[[int], None]  # frames scored since the last call


@dataclass(frozen=True, slots=True)
class Job:
    recording: Recording
    key: str  # names the part: the file and every setting its cases depend on

    @property
    def camera_id(self) -> str:
        return self.recording.camera.id


def job_key(recording: Recording, config: Config, evidence_dir: Path) -> str:
    """Changes when the file, its camera, the model, detector or rule settings, or where its
    evidence goes change: a re-run then scores the file again."""
    stat = recording.path.stat() if recording.path.is_file() else None
    parts = [
        recording.camera.model_dump_json(),
        config.model_dump_json(exclude={"cameras", "api"}),
        str(evidence_dir.resolve()),
        f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "missing",
    ]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"{recording.camera.id}-{recording.path.stem}-{digest}"


class PartStore:
    """One JSON-lines file per finished job, written atomically: present means done."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.jsonl"

    def load(self, key: str) -> list[CaseReport] | None:
        """The job's cases, or None if it is not done (or its part, or the evidence it
        names, is gone or damaged: then it is scored again)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            return [CaseReport.model_validate(json.loads(line)) for line in lines]
        except (OSError, ValueError, ValidationError):
            return None

    def save(self, key: str, cases: list[CaseReport]) -> None:
        write_jsonl(self._path(key), cases)


def expected_frames(recording: Recording) -> int | None:
    """At most how many samples a file gives (at its active rate), for the progress bar
    (None: unknown)."""
    camera = recording.camera
    try:
        duration = FileSource(camera.id, camera.source).duration_s()
    except (SourceError, av.error.FFmpegError, OSError):  # reported when it is scored
        return None
    if duration is None or camera.sample.keyframes:
        return None
    return round(duration * (camera.sample.fps or 25.0))


def score_job(
    job: Job,
    engine: Submits | None,
    config: Config,
    labels: Labels,
    evidence: EvidenceWriter,
    on_frame: FrameHook | None = None,
    inferred: Mapping[int, Detections] | None = None,
) -> CameraResult:
    """`score_camera`, with any failure (a file that breaks the decoder half way, a full
    disk) kept as the file's error: one bad file never stops a batch."""
    try:
        return score_camera(
            job.recording.camera, engine, config, labels, evidence, on_frame, inferred
        )
    except Exception as exc:
        log.exception("camera %s: scoring %s failed", job.camera_id, job.recording.path)
        return CameraResult(job.camera_id, error=f"{job.recording.path}: {exc!r}")


def run_local(
    jobs: list[Job], models: ModelSet, config: Config, evidence_dir: Path, tick: Tick
) -> Iterator[tuple[Job, CameraResult]]:
    """Each job in this process, in order, on its camera's models over every core."""
    evidence = EvidenceWriter(evidence_dir, previews=True, deidentify=deidentifier())
    for job in jobs:
        mix = models.of(job.recording.camera)
        yield job, score_job(job, mix, config, mix.labels, evidence, lambda _frame: tick(1))
