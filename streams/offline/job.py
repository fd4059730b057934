"""A scoring job, as `streetwatch score` runs it and a test can call it: the recordings to
score (named ones, else the config's file cameras), one part per finished file kept on disk
so a re-run skips it, the files scored here or on Ray, the parts merged in file order into
one JSON-lines file. What happens along the way is told to a `ScoreProgress`; the outcome
is a `ScoreSummary`. Posting the cases is `streams.offline.post`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from api.contract import CaseReport
from streams.config import Config
from streams.sources.recordings import (
    NamePattern,
    Recording,
    RecordingsError,
    Unassigned,
    config_recordings,
    recordings,
)

if TYPE_CHECKING:  # the scoring stack loads when a job runs, not with the command line
    from streams.offline.scoring import CameraResult

log = logging.getLogger(__name__)

DEFAULT_CHUNK_S = 600.0  # ten minutes of media: spans long enough that loading them is noise


class ScoreRequestError(ValueError):
    """What was asked cannot be scored (a bad setting, no recording, Ray not installed):
    refused before any work, nothing written."""


class ScoreFailed(RuntimeError):
    """The job could not start scoring (a model that does not load, a Ray cluster that
    cannot be reached): no file was scored, nothing written."""


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """One scoring job. The fields are `streetwatch score`'s options, and the errors name
    them so."""

    config: Config
    out: Path  # the cases, one JSON line each
    evidence_dir: Path
    # Video files, directories, globs or CSV manifests; none: every file camera of `config`.
    recordings: tuple[str, ...] = ()
    pattern: NamePattern | None = None  # ties a named file to its camera and start time
    work_dir: Path | None = None  # the finished files' parts; default OUT.parts beside `out`
    ray: bool = False  # on a local Ray runtime, unless `ray_address` names a cluster
    ray_address: str | None = None
    workers: int | None = None  # CPUs of the local Ray runtime (default: one per core)
    chunk_s: float = DEFAULT_CHUNK_S  # on Ray, longer files are inferred in spans; 0: never

    def __post_init__(self) -> None:
        if self.workers is not None and (self.workers < 1 or self.ray_address or not self.ray):
            raise ScoreRequestError(
                "--workers is a positive number, with --ray (the local Ray runtime)"
            )
        if self.chunk_s < 0:
            raise ScoreRequestError("--chunk-s must be >= 0")

    @property
    def uses_ray(self) -> bool:
        return self.ray or self.ray_address is not None

    @property
    def parts_dir(self) -> Path:
        return self.work_dir or self.out.with_name(self.out.name + ".parts")


class ScoreProgress:
    """What a job tells whoever watches it, in this order; each does nothing here, so a
    watcher overrides what it shows (the command line: a progress bar and a line a file)."""

    def unassigned(self, miss: Unassigned) -> None:
        """A named file tied to no camera of the config: reported, not scored."""

    def begin(self, todo: int, done: int, frames: int | None, parts_dir: Path) -> None:
        """`todo` files to score, about `frames` samples in all (None: unknown); `done`
        files scored by an earlier run, their parts in `parts_dir`."""

    def tick(self, frames: int) -> None:
        """`frames` more samples scored."""

    def finished(self, result: CameraResult, path: Path, frames_left: int) -> None:
        """One file scored (or failed: `result.error`); about `frames_left` samples to go
        in the files still being scored (their rates adapt, so the estimate shrinks)."""


@dataclass(slots=True)
class ScoreSummary:
    """A finished job: every case of the files scored now or before, in file order."""

    out: Path
    parts_dir: Path  # the parts; `streams.offline.post` keeps its outbox here too
    files: int  # named or configured, the unassigned ones included
    scored: int  # now or by an earlier run
    frames: int  # sampled by this run
    seconds: float
    cases: list[CaseReport] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # file names: unassigned or failed

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def select(request: ScoreRequest) -> tuple[list[Recording], list[Unassigned]]:
    """The recordings the request names, else the config's file cameras."""
    if not request.recordings:
        for cam in request.config.cameras:
            if cam.is_live:
                # Its scheme only: a camera URL may carry a password.
                scheme = cam.source.partition("://")[0]
                log.info("camera %s is live (%s://): not scored offline", cam.id, scheme)
        return config_recordings(request.config), []
    try:
        return recordings(list(request.recordings), request.config, request.pattern)
    except RecordingsError as exc:
        raise ScoreRequestError(str(exc)) from exc


def score_recordings(request: ScoreRequest, progress: ScoreProgress | None = None) -> ScoreSummary:
    """Runs the job: raises ScoreRequestError or ScoreFailed before anything is scored;
    after that a file that fails is the summary's `failed`, and the rest are scored."""
    progress = progress or ScoreProgress()
    if request.uses_ray:
        try:
            from streams.offline import ray_batch
        except ImportError as exc:
            raise ScoreRequestError("--ray needs Ray: pip install 'streetwatch[ray]'") from exc
    found, unassigned = select(request)
    for miss in unassigned:
        progress.unassigned(miss)
    if not found:
        raise ScoreRequestError("no recording to score")
    # Imported after validation so a bad request is refused before any heavy loading.
    from models.errors import ModelError
    from streams.camera.model_set import ModelSet
    from streams.offline.batch import Job, PartStore, expected_frames, job_key, run_local
    from streams.offline.scoring import write_jsonl

    config = request.config
    try:
        models = ModelSet(config, [r.camera for r in found])
    except ModelError as exc:
        raise ScoreFailed(str(exc)) from exc
    store = PartStore(request.parts_dir)
    jobs = [Job(r, job_key(r, config, request.evidence_dir)) for r in found]
    done = {job.key: cases for job in jobs if (cases := store.load(job.key)) is not None}
    todo = [job for job in jobs if job.key not in done]
    remaining = {job.key: expected_frames(job.recording) or 0 for job in todo}
    progress.begin(len(todo), len(done), sum(remaining.values()) or None, store.directory)

    started = time.perf_counter()
    frames = 0
    failed = [m.path.name for m in unassigned]
    started_ray = False
    if request.uses_ray:
        try:
            started_ray = ray_batch.connect(request.ray_address, request.workers)
        except (ConnectionError, RuntimeError) as exc:
            raise ScoreFailed(f"cannot start or reach Ray: {exc}") from exc
        log.info("Ray: %d CPUs", ray_batch.cluster_cpus())
        results = ray_batch.run_ray(
            todo, config, request.evidence_dir, progress.tick, request.chunk_s or None
        )
    else:
        results = run_local(todo, models, config, request.evidence_dir, progress.tick)
    try:
        for job, result in results:
            remaining.pop(job.key, None)
            frames += result.frames
            if result.error:
                failed.append(job.recording.path.name)
            else:
                store.save(job.key, result.cases)
                done[job.key] = result.cases
            progress.finished(result, job.recording.path, sum(remaining.values()))
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    cases = [case for job in jobs if job.key in done for case in done[job.key]]
    write_jsonl(request.out, cases)
    return ScoreSummary(
        out=request.out,
        parts_dir=store.directory,
        files=len(jobs) + len(unassigned),
        scored=sum(job.key in done for job in jobs),
        frames=frames,
        seconds=time.perf_counter() - started,
        cases=cases,
        failed=failed,
    )
