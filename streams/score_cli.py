"""`streetwatch score`: offline scoring of recorded video."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from api.client.backoff import Backoff
from streams.config import Config, ConfigError, load_config
from streams.recordings import (
    DEFAULT_TIME_FORMAT,
    NamePattern,
    Recording,
    RecordingsError,
    Unassigned,
    config_recordings,
    recordings,
)

log = logging.getLogger("streetwatch.score")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POST_ATTEMPTS = 4
POST_BACKOFF = Backoff(initial_s=1.0, max_s=8.0)  # jittered, so parallel runs spread out
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
        "named by the config's api.key_env, default STREETWATCH_API_KEY); safe to repeat",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    use_ray = args.ray or args.ray_address is not None
    if args.workers is not None and (args.workers < 1 or args.ray_address or not args.ray):
        print(
            "error: --workers is a positive number, with --ray (the local Ray runtime)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.chunk_s < 0:
        print("error: --chunk-s must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    key_env = config.api.key_env if config.api else "STREETWATCH_API_KEY"
    api_key = os.environ.get(key_env)
    if args.post and not api_key:
        print(f"error: --post needs an API key in ${key_env}", file=sys.stderr)
        return EXIT_USAGE
    if use_ray:
        try:
            from streams import ray_batch
        except ImportError:
            print("error: --ray needs Ray: pip install 'streetwatch[ray]'", file=sys.stderr)
            return EXIT_USAGE
    try:
        found, unassigned = select(args, config)
    except RecordingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for miss in unassigned:
        print(f"error: {miss.path}: {miss.reason} (skipped)", file=sys.stderr)
    if not found:
        print("error: no recording to score", file=sys.stderr)
        return EXIT_USAGE
    # Imported after validation so a bad config is refused before any heavy loading.
    from models.errors import ModelError
    from streams.batch import Job, PartStore, expected_frames, job_key, run_local
    from streams.model_set import ModelSet
    from streams.scoring import write_jsonl

    try:
        models = ModelSet(config, [r.camera for r in found])
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
                print(f"error: cannot start or reach Ray: {exc}", file=sys.stderr)
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
    if args.post and not post_all(args.post, api_key, reports):
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


def post_all(url: str, api_key: str, reports: list) -> bool:
    """Posts every case with its evidence; the incident id is the Idempotency-Key."""
    from api.client import IntakeClient, IntakeError, RetryableError

    posted = merged = 0
    problems = []
    with IntakeClient(url, api_key) as client:
        for report in reports:
            for attempt in range(POST_ATTEMPTS):
                try:
                    receipt = client.post_case(report, None, report.id)
                except RetryableError as exc:
                    if attempt + 1 < POST_ATTEMPTS:
                        time.sleep(max(exc.retry_after or 0.0, POST_BACKOFF.delay(attempt)))
                        continue
                    problems.append(f"{report.id}: {exc}")
                except IntakeError as exc:
                    problems.append(f"{report.id}: {exc}")
                else:
                    posted += 1
                    merged += receipt.merged
                break
    print(f"posted {posted}/{len(reports)} cases to {url} ({merged} merged into existing cases)")
    for problem in problems:
        print(f"error: not posted: {problem}", file=sys.stderr)
    return not problems
