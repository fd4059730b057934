"""`streetwatch score`: offline scoring of recorded video, a thin layer over
`streams.offline.job` (the job) and `streams.offline.post` (`--post`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from api.client.outbox import OutboxError
from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from streams.config import ConfigError, api_key, load_config
from streams.offline.job import (
    DEFAULT_CHUNK_S,
    ScoreFailed,
    ScoreProgress,
    ScoreRequest,
    ScoreRequestError,
    ScoreSummary,
    score_recordings,
)
from streams.offline.post import post_cases
from streams.sources.recordings import (
    DEFAULT_TIME_FORMAT,
    NamePattern,
    RecordingsError,
    Unassigned,
)

if TYPE_CHECKING:  # the scoring stack loads when a job runs, not with the command line
    from streams.offline.scoring import CameraResult


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
    key_env, key = api_key(config)
    if args.post and not key:
        err(f"--post needs an API key in ${key_env}")
        return EXIT_USAGE
    bar = Bar()
    try:
        pattern = (
            NamePattern.parse(args.name_pattern, args.time_format, args.tz)
            if args.name_pattern
            else None
        )
        request = ScoreRequest(
            config=config,
            out=args.out,
            evidence_dir=args.evidence_dir,
            recordings=tuple(args.recordings),
            pattern=pattern,
            work_dir=args.work_dir,
            ray=args.ray,
            ray_address=args.ray_address,
            workers=args.workers,
            chunk_s=args.chunk_s,
        )
        summary = score_recordings(request, bar)
    except (RecordingsError, ScoreRequestError) as exc:
        err(str(exc))
        return EXIT_USAGE
    except ScoreFailed as exc:
        err(str(exc))
        return EXIT_FAILED
    finally:
        bar.close()
    print(_summary(summary))
    if args.post and not post(args.post, key, summary):
        return EXIT_FAILED
    return EXIT_FAILED if summary.failed else EXIT_OK


class Bar(ScoreProgress):
    """The job on stderr: one progress bar of samples, and a line a file."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.todo = self.finished_files = 0

    def unassigned(self, miss: Unassigned) -> None:
        err(f"{miss.path}: {miss.reason} (skipped)")

    def begin(self, todo: int, done: int, frames: int | None, parts_dir: Path) -> None:
        if done:
            print(f"{done} of {todo + done} files already scored in {parts_dir}", file=sys.stderr)
        self.todo = todo
        self.bar = tqdm(
            total=frames, desc="scoring", unit="frame", postfix=f"files 0/{todo}", disable=None
        )

    def tick(self, frames: int) -> None:
        assert self.bar is not None
        self.bar.update(frames)

    def finished(self, result: CameraResult, path: Path, frames_left: int) -> None:
        bar = self.bar
        assert bar is not None
        self.finished_files += 1
        bar.set_postfix_str(f"files {self.finished_files}/{self.todo}")
        if bar.total is not None:
            bar.total = bar.n + frames_left
            bar.refresh()
        if result.error:
            bar.write(f"error: {result.error} (skipped)", file=sys.stderr)
            return
        bar.write(
            f"{result.camera_id} {path.name}: {result.frames} frames, "
            f"{len(result.cases)} incidents, {result.seconds:.1f} s "
            f"({result.frames / result.seconds if result.seconds else 0.0:.1f} frames/s)"
            + (f", {result.scene_changes} scene changes" if result.scene_changes else ""),
            file=sys.stderr,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(summary: ScoreSummary) -> str:
    line = (
        f"scored {summary.scored}/{summary.files} files: {summary.frames} frames, "
        f"{len(summary.cases)} incidents in {summary.seconds:.1f} s "
        f"({summary.rate:.1f} frames/s) -> {summary.out}"
    )
    return line + (f"; failed: {', '.join(summary.failed)}" if summary.failed else "")


def post(url: str, key: str, summary: ScoreSummary) -> bool:
    """`--post`: the job's cases through its outbox; says what the API holds and what waits.
    True when the API holds every case."""
    try:
        outcome = post_cases(url, key, summary.cases, summary.parts_dir)
    except OutboxError as exc:  # the disk failed under the queue: what is queued stays
        err(str(exc))
        return False
    print(f"posted {outcome.posted}/{outcome.total} cases to {url}")
    for item in outcome.dead:
        err(f"not posted: {item.incident_id}: {item.reason}")
    if outcome.waiting:
        err(
            f"{len(outcome.waiting)} cases not delivered yet ({outcome.waiting[0].last_error}); "
            f"they wait in {outcome.outbox}: run the same command again to deliver them"
        )
    if outcome.dead:
        err(
            f"refused cases stay in {outcome.outbox}: streetwatch outbox list --state-dir "
            f"{outcome.outbox.parent}"
        )
    return outcome.complete
