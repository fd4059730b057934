"""`streetwatch score`: offline scoring of recorded video."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from api.client.backoff import Backoff
from api.contract import CaseReport
from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from streams.config import Config, ConfigError, api_key, load_config
from streams.sources.recordings import (
    DEFAULT_TIME_FORMAT,
    NamePattern,
    Recording,
    RecordingsError,
    Unassigned,
    config_recordings,
    recordings,
)

if TYPE_CHECKING:
    from api.client import IntakeClient
    from api.client.outbox import Outbox

log = logging.getLogger("streetwatch.score")

# --post: each case tried this many times in one run (then it waits in the outbox for the
# next run), jittered so parallel runs spread out.
POST_ATTEMPTS = 4
POST_BACKOFF = Backoff(initial_s=1.0, max_s=8.0)
OUTBOX_NAME = "outbox.sqlite3"
DEFAULT_CHUNK_S = 600.0  # ten minutes of media: spans long enough that loading them is noise


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score recorded video files and write one JSON line per incident",
        description="Scores recordings as fast as the machine (or a Ray cluster) allows and "
        "writes one JSON object per incident. Without RECORDINGS, every camera of the config "
        "whose source is a file; with them, each file as the configured camera it came from "
        "(from a manifest, --name-pattern, or its file name). Each finished file is kept in "
        "--work-dir, so a re-run skips it.",
    )
    p.add_argument(
        "recordings",
        nargs="*",
        metavar="RECORDINGS",
        help="video files, directories, globs ('rec/**/*.mp4'), or CSV manifests with the "
        "header path,camera_id,start_time (start time ISO 8601 with an offset)",
    )
    p.add_argument("--config", required=True, type=Path, help="YAML configuration file")
    p.add_argument("--out", required=True, type=Path, help="where to write cases (JSON lines)")
    p.add_argument(
        "--evidence-dir",
        required=True,
        type=Path,
        help="where to write evidence JPEGs (the unaltered frames; annotated copies under "
        "DIR/annotated/)",
    )
    p.add_argument(
        "--name-pattern",
        metavar="REGEX",
        help="regular expression over the file name (without suffix) with groups "
        "(?P<camera>...) and/or (?P<start>...), e.g. '(?P<camera>.+)_(?P<start>\\d{8}T\\d{6})'; "
        "default: the camera is the file name, the start time the file's own",
    )
    p.add_argument(
        "--time-format",
        default=DEFAULT_TIME_FORMAT,
        help="strptime format of the (?P<start>...) group (default: %(default)s)",
    )
    p.add_argument(
        "--tz",
        default="UTC",
        help="offset of start times that carry none, e.g. +08:00 (default: %(default)s)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        help="where each finished file's cases are kept, so a re-run skips it "
        "(default: OUT.parts beside --out); delete it to score everything again",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="fan the files out on Ray (the `ray` extra): a local runtime unless --ray-address",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="an existing Ray cluster (host:port, or 'auto'); implies --ray",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="CPUs of the local Ray runtime, one file or span per CPU (default: one per core)",
    )
    p.add_argument(
        "--chunk-s",
        type=float,
        default=DEFAULT_CHUNK_S,
        metavar="S",
        help="on Ray, infer files longer than this many seconds of media in keyframe spans "
        "on several workers (same results; 0: never; default: %(default)s)",
    )
    p.add_argument(
        "--post",
        metavar="URL",
        help="also post each case to the intake API at URL (key from the environment variable "
        "named by the config's api.key_env, default STREETWATCH_API_KEY) through a durable "
        "outbox in the work dir: what the API does not take now waits there for the next run; "
        "safe to repeat",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err(str(exc))
        return EXIT_USAGE
    use_ray = args.ray or args.ray_address is not None
    if args.workers is not None and (args.workers < 1 or args.ray_address or not args.ray):
        err("--workers is a positive number, with --ray (the local Ray runtime)")
        return EXIT_USAGE
    if args.chunk_s < 0:
        err("--chunk-s must be >= 0")
        return EXIT_USAGE
    key_env, key = api_key(config)
    if args.post and not key:
        err(f"--post needs an API key in ${key_env}")
        return EXIT_USAGE
    if use_ray:
        try:
            from streams.offline import ray_batch
        except ImportError:
            err("--ray needs Ray: pip install 'streetwatch[ray]'")
            return EXIT_USAGE
    try:
        found, unassigned = select(args, config)
    except RecordingsError as exc:
        err(str(exc))
        return EXIT_USAGE
    for miss in unassigned:
        err(f"{miss.path}: {miss.reason} (skipped)")
    if not found:
        err("no recording to score")
        return EXIT_USAGE
    # Imported after validation so a bad config is refused before any heavy loading.
    from models.errors import ModelError
    from streams.camera.model_set import ModelSet
    from streams.offline.batch import Job, PartStore, expected_frames, job_key, run_local
    from streams.offline.scoring import write_jsonl

    try:
        models = ModelSet(config, [r.camera for r in found])
    except ModelError as exc:
        err(str(exc))
        return EXIT_FAILED
    store = PartStore(args.work_dir or args.out.with_name(args.out.name + ".parts"))
    jobs = [Job(r, job_key(r, config, args.evidence_dir)) for r in found]
    done = {job.key: cases for job in jobs if (cases := store.load(job.key)) is not None}
    todo = [job for job in jobs if job.key not in done]
    if done:
        print(
            f"{len(done)} of {len(jobs)} files already scored in {store.directory}", file=sys.stderr
        )

    started = time.perf_counter()
    frames = 0
    failed = [m.path.name for m in unassigned]
    remaining = {job.key: expected_frames(job.recording) for job in todo}
    bar = tqdm(
        total=sum(t or 0 for t in remaining.values()) or None,
        desc="scoring",
        unit="frame",
        postfix=f"files 0/{len(todo)}",
        disable=None,
    )
    started_ray = False
    with bar:
        if use_ray:
            try:
                started_ray = ray_batch.connect(args.ray_address, args.workers)
            except (ConnectionError, RuntimeError) as exc:
                err(f"cannot start or reach Ray: {exc}")
                return EXIT_FAILED
            log.info("Ray: %d CPUs", ray_batch.cluster_cpus())
            results = ray_batch.run_ray(
                todo, config, args.evidence_dir, bar.update, args.chunk_s or None
            )
        else:
            results = run_local(todo, models, config, args.evidence_dir, bar.update)
        try:
            for n, (job, result) in enumerate(results, start=1):
                bar.set_postfix_str(f"files {n}/{len(todo)}")
                # A file's count is at its cameras' active rates: adaptive sampling takes
                # fewer, so the total shrinks to what is left as each file ends.
                remaining.pop(job.key, None)
                if bar.total is not None:
                    bar.total = bar.n + sum(t or 0 for t in remaining.values())
                    bar.refresh()
                frames += result.frames
                if result.error:
                    failed.append(job.recording.path.name)
                    bar.write(f"error: {result.error} (skipped)", file=sys.stderr)
                    continue
                store.save(job.key, result.cases)
                done[job.key] = result.cases
                rate = result.frames / result.seconds if result.seconds else 0.0
                bar.write(
                    f"{job.camera_id} {job.recording.path.name}: {result.frames} frames, "
                    f"{len(result.cases)} incidents, {result.seconds:.1f} s ({rate:.1f} frames/s)"
                    + (f", {result.scene_changes} scene changes" if result.scene_changes else ""),
                    file=sys.stderr,
                )
        finally:
            if started_ray:
                import ray

                ray.shutdown()
    reports = [case for job in jobs if job.key in done for case in done[job.key]]
    write_jsonl(args.out, reports)
    elapsed = time.perf_counter() - started
    rate = frames / elapsed if elapsed else 0.0
    scored = sum(job.key in done for job in jobs)
    summary = (
        f"scored {scored}/{len(jobs) + len(unassigned)} files: {frames} frames, "
        f"{len(reports)} incidents in {elapsed:.1f} s ({rate:.1f} frames/s) -> {args.out}"
    )
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    print(summary)
    if args.post and not post_all(args.post, key, reports, store.directory / OUTBOX_NAME):
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def select(args: argparse.Namespace, config: Config) -> tuple[list[Recording], list[Unassigned]]:
    """The recordings named on the command line, else the config's file cameras."""
    if not args.recordings:
        for cam in config.cameras:
            if cam.is_live:
                log.info("camera %s is live (%s): not scored offline", cam.id, cam.source)
        return config_recordings(config), []
    pattern = (
        NamePattern.parse(args.name_pattern, args.time_format, args.tz)
        if args.name_pattern
        else None
    )
    return recordings(args.recordings, config, pattern)


def post_all(url: str, key: str, reports: list[CaseReport], outbox_path: Path) -> bool:
    """Posts every case (with its evidence) through the durable outbox the worker uses: each
    is queued on disk first, with its incident id as Idempotency-Key, then delivered. A case
    the API does not take within POST_ATTEMPTS tries waits in the outbox for the next run (a
    re-run of the same command), one it refuses is a dead letter (`streetwatch outbox list
    --state-dir DIR`); a case delivered before is not sent again. True when the API holds
    every case."""
    from api.client import IntakeClient
    from api.client.outbox import Outbox, OutboxError

    try:
        box = Outbox(outbox_path, POST_BACKOFF)
    except OutboxError as exc:
        err(str(exc))
        return False
    try:
        for report in reports:
            box.enqueue_report(report)
        with IntakeClient(url, key) as client:
            _drain(box, client)
        ids = {r.id for r in reports}
        waiting = [i for i in box.pending() if i.incident_id in ids]
        dead = [d for d in box.dead() if d.incident_id in ids]
    except OutboxError as exc:  # the disk failed under the queue: what is queued stays
        err(str(exc))
        return False
    finally:
        box.close()
    posted = len(reports) - len(waiting) - len(dead)
    print(f"posted {posted}/{len(reports)} cases to {url}")
    for item in dead:
        err(f"not posted: {item.incident_id}: {item.reason}")
    if waiting:
        err(
            f"{len(waiting)} cases not delivered yet ({waiting[0].last_error}); they wait in "
            f"{outbox_path}: run the same command again to deliver them"
        )
    if dead:
        err(
            f"refused cases stay in {outbox_path}: streetwatch outbox list --state-dir "
            f"{outbox_path.parent}"
        )
    return not waiting and not dead


def _drain(box: Outbox, client: IntakeClient) -> None:
    """Delivers the queued cases in the order they were queued (the API merges a report into
    an open case at the same site, so an earlier stay must land first): each gets
    POST_ATTEMPTS tries now, whenever its last run left it due; the first that the API does
    not take stops the run, and it and the cases after it wait for the next."""
    for item in box.pending():
        for attempt in range(POST_ATTEMPTS):
            if box.deliver(client, item, None):  # the evidence stays where score wrote it
                break
            left = next((i for i in box.pending() if i.id == item.id), None)
            if left is None:  # refused for good: a dead letter, the next case goes on
                break
            if attempt + 1 == POST_ATTEMPTS:
                return
            time.sleep(max(0.0, left.next_attempt_at - time.time()))
            item = left
