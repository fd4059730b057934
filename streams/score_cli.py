"""`streetwatch score`: offline scoring of recorded video."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from api.backoff import Backoff
from streams.config import ConfigError, load_config

log = logging.getLogger("streetwatch.score")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POST_ATTEMPTS = 4
POST_BACKOFF = Backoff(initial_s=1.0, max_s=8.0)  # jittered, so parallel runs spread out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score recorded video files and write one JSON line per incident",
        description="Scores every camera whose source is a file, as fast as the machine "
        "allows, and writes one JSON object per incident.",
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
    # Imported after validation so a bad config is refused before any heavy loading.
    from models.errors import ModelError
    from streams.evidence import EvidenceWriter
    from streams.model_set import ModelSet
    from streams.scoring import score_camera, write_jsonl

    key_env = config.api.key_env if config.api else "STREETWATCH_API_KEY"
    api_key = os.environ.get(key_env)
    if args.post and not api_key:
        print(f"error: --post needs an API key in ${key_env}", file=sys.stderr)
        return EXIT_USAGE
    files = [c for c in config.cameras if not c.is_live]
    for cam in config.cameras:
        if cam.is_live:
            log.info("camera %s is live (%s): not scored offline", cam.id, cam.source)
    if not files:
        print("error: no camera in the config has a file source", file=sys.stderr)
        return EXIT_USAGE
    try:
        models = ModelSet(config, files)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    evidence = EvidenceWriter(args.evidence_dir, previews=True)

    started = time.perf_counter()
    frames = 0
    reports = []
    failed = []
    for cam in files:
        loaded = models.of(cam)
        result = score_camera(cam, loaded.engine, config, loaded.labels, evidence)
        frames += result.frames
        if result.error:
            failed.append(cam.id)
            print(f"error: {result.error} (skipped)", file=sys.stderr)
            continue
        reports.extend(result.cases)
        rate = result.frames / result.seconds if result.seconds else 0.0
        print(
            f"{cam.id}: {result.frames} frames, {len(result.cases)} incidents, "
            f"{result.seconds:.1f} s ({rate:.1f} frames/s)"
            + (f", {result.scene_changes} scene changes" if result.scene_changes else ""),
            file=sys.stderr,
        )
    write_jsonl(args.out, reports)
    elapsed = time.perf_counter() - started
    rate = frames / elapsed if elapsed else 0.0
    summary = (
        f"scored {len(files) - len(failed)}/{len(files)} cameras: {frames} frames, "
        f"{len(reports)} incidents in {elapsed:.1f} s ({rate:.1f} frames/s) -> {args.out}"
    )
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    print(summary)
    if args.post and not post_all(args.post, api_key, reports):
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


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
