"""Batch scoring on Ray (the `ray` extra): one task per file on a local runtime (one worker
per core) or a cluster; a file longer than `chunk_s` is inferred in keyframe spans on
several workers, then scored by one task over those detections (see streams.offline.chunks), so
its cases are exactly the single pass's. Recordings and the evidence directory must be at
the same paths on every node (one machine, or shared storage)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import ray
from ray.exceptions import RayError

from detector.deidentify import Deidentifier
from detector.model_mix import ModelMix
from detector.types import Detections
from streams.camera.engines import Engines
from streams.camera.evidence import EvidenceWriter, deidentifier
from streams.config import CameraConfig, Config
from streams.offline.batch import Job, Tick, score_job
from streams.offline.chunks import detect_span, plan_spans
from streams.offline.scoring import CameraResult
from streams.sources.files import FileSource, SourceError, Span
from streams.sources.recordings import Recording

log = logging.getLogger(__name__)

TICK_EVERY = 10  # frames between progress reports from a task
POLL_S = 0.25

_engines = Engines()  # per Ray worker process: loaded once
_deid: Deidentifier | None = None


def _deidentifier() -> Deidentifier:
    """This Ray worker process's de-identifier: its plate models loaded once, kept across
    tasks (a process runs one task at a time)."""
    global _deid
    if _deid is None:
        _deid = deidentifier()
    return _deid


def _models(config: Config, camera: CameraConfig) -> ModelMix:
    """The camera's models, each engine this worker's on its one core (a task holds one
    CPU), kept across tasks."""
    parts = []
    for model, types in config.models_of(camera).items():
        loaded = _engines.get(config, model, cores=1)
        parts.append((model, loaded.engine, loaded.labels, types))
    return ModelMix(parts)


@ray.remote(num_cpus=0)
class Progress:
    """Frames scored across all tasks, taken by the driver for its one progress bar."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, frames: int) -> None:
        self.frames += frames

    def take(self) -> int:
        frames, self.frames = self.frames, 0
        return frames


class _Ticker:
    def __init__(self, progress: ray.actor.ActorHandle, counts: bool) -> None:
        self.progress, self.counts, self.pending = progress, counts, 0

    def __call__(self, _frame: object) -> None:
        self.pending += self.counts
        if self.pending >= TICK_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.progress.add.remote(self.pending)
            self.pending = 0


@ray.remote(num_cpus=1, max_retries=0)
def _score(
    job: Job,
    config: Config,
    evidence_dir: str,
    progress: ray.actor.ActorHandle,
    *spans: dict[int, Detections],
) -> CameraResult:
    mix = _models(config, job.recording.camera)
    inferred = {k: v for part in spans for k, v in part.items()} if spans else None
    ticker = _Ticker(progress, counts=inferred is None)  # spans counted their frames
    result = score_job(
        job,
        mix,
        config,
        mix.labels,
        EvidenceWriter(Path(evidence_dir), previews=True, deidentify=_deidentifier()),
        ticker,
    )
    ticker.flush()
    return result


@ray.remote(num_cpus=1, max_retries=0)
def _detect(
    recording: Recording, span: Span, config: Config, progress: ray.actor.ActorHandle
) -> dict[int, Detections]:
    found = detect_span(recording.camera, span, _models(config, recording.camera))
    progress.add.remote(len(found))
    return found


def connect(address: str | None, workers: int | None) -> bool:
    """Joins the cluster at `address`, or starts a local runtime with `workers` CPUs
    (default: one per core). Returns whether this call started the runtime."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return True


def cluster_cpus() -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def _spans(recording: Recording, chunk_s: float | None) -> list[Span]:
    if not chunk_s:
        return []
    camera = recording.camera
    try:
        duration = FileSource(camera.id, camera.source).duration_s()
        if duration is None or duration <= chunk_s:
            return []
        spans = plan_spans(camera, chunk_s)
    except SourceError:
        return []  # the scoring task reports it
    return spans if len(spans) > 1 else []


def run_ray(
    jobs: list[Job],
    config: Config,
    evidence_dir: Path,
    tick: Tick,
    chunk_s: float | None = None,
) -> Iterator[tuple[Job, CameraResult]]:
    """Each job as Ray tasks on the connected cluster, yielded as they finish."""
    progress = Progress.remote()
    shared = ray.put(config)
    pending = {}
    for job in jobs:
        spans = [
            _detect.remote(job.recording, span, shared, progress)
            for span in _spans(job.recording, chunk_s)
        ]
        if spans:
            log.info("%s: inferred in %d keyframe spans", job.recording.path.name, len(spans))
        ref = _score.remote(job, shared, str(evidence_dir), progress, *spans)
        pending[ref] = job
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
            tick(ray.get(progress.take.remote()))
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayError as exc:  # a task whose worker died, or a span that failed
                    why = str(exc).strip().splitlines()[-1]
                    result = CameraResult(job.camera_id, error=f"{job.recording.path}: {why}")
                yield job, result
        tick(ray.get(progress.take.remote()))
    finally:
        for ref in pending:
            ray.cancel(ref)
        ray.kill(progress)
