"""`streetwatch run` (the live worker) and `streetwatch outbox` (inspect and retry delivery)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from streams.config import ConfigError

if TYPE_CHECKING:
    from streams.live.worker import Shard

log = logging.getLogger("streetwatch.run")


def default_state_dir(shard: str) -> Path:
    if env := os.environ.get("STREETWATCH_STATE"):
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(xdg) / "streetwatch" / f"worker-{shard.replace('/', '-of-')}"


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="watch the config's RTSP cameras and post cases to the intake API",
        description="Runs every live camera of the config (or of this shard) with batched "
        "inference, in one process or spread over several (--processes). SIGHUP or editing "
        "the config reloads cameras; SIGTERM stops cleanly, handing open incidents to the "
        "outbox first.",
    )
    p.add_argument("--config", required=True, type=Path, help="YAML configuration file")
    p.add_argument("--shard", default="0/1", help="I/N: run the cameras of shard I of N")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="outbox and evidence (env STREETWATCH_STATE; default ~/.local/state/streetwatch/…)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address for the metrics port")
    p.add_argument("--open-timeout", type=seconds, default=10.0, help="seconds to open a camera")
    p.add_argument("--read-timeout", type=seconds, default=5.0, help="seconds without data = lost")
    p.add_argument(
        "--freeze-after",
        type=seconds,
        default=60.0,
        help="seconds of an unchanging picture before a camera is reported frozen",
    )
    p.add_argument(
        "--fleet",
        action="store_true",
        help="take cameras from the intake API as a fleet worker (the config's cameras are "
        "ignored; its key needs the ingest and fleet scopes) instead of from the config",
    )
    p.add_argument(
        "--worker-id",
        default=os.environ.get("STREETWATCH_WORKER_ID") or socket.gethostname(),
        help="this worker's name in the fleet, stable across restarts so it gets its "
        "cameras back (env STREETWATCH_WORKER_ID; default: the host name, %(default)s)",
    )
    p.add_argument("--health-port", type=int, help="serve GET /healthz on this port")
    p.add_argument("--health-host", default="127.0.0.1", help="address for the health port")
    p.add_argument(
        "--processes",
        type=positive_int,
        help="worker processes on this host, each over its share of the cameras, with its "
        "state in STATE_DIR/process-I (default: the config's worker.processes, else one per "
        "core as long as each gets 32 cameras; 1 for --fleet); 1: everything in one process",
    )
    p.add_argument(
        "--inference-cores",
        type=positive_int,
        help="cores each process's inference spreads over (default: all it may run on, "
        "divided by --processes)",
    )
    p.set_defaults(func=run)

    p = sub.add_parser("outbox", help="list or retry what waits for the intake API")
    p.add_argument("action", choices=["list", "retry"])
    p.add_argument("ids", nargs="*", type=int, help="retry: dead-letter ids (default: all)")
    p.add_argument("--shard", default="0/1", help="which worker's state (with default paths)")
    p.add_argument("--state-dir", type=Path, help="the worker's state directory")
    p.set_defaults(func=outbox)


def run(args: argparse.Namespace) -> int:
    from api.client.outbox import OutboxError
    from detector.engine import available_cores
    from models.errors import ModelError
    from streams.live.supervisor import default_processes, stranded_outboxes
    from streams.live.worker import Shard, Worker, runnable

    try:
        shard = Shard.parse(args.shard)
        if args.fleet and shard.count != 1:
            raise ValueError("--fleet assigns cameras itself: no --shard with it")
        config, _ = runnable(args.config, fleet=args.fleet)
        cameras = None if args.fleet else sum(shard.owns(c.id) for c in config.cameras)
        processes = (
            args.processes
            or config.worker.processes
            or default_processes(available_cores(), cameras)
        )
        state_name = f"fleet-{args.worker_id}" if args.fleet else args.shard
        state_dir = args.state_dir or default_state_dir(state_name)
        for stranded in stranded_outboxes(state_dir, processes):
            log.error(
                "%s, left by a run with another number of processes: run with that number "
                "until it is empty",
                stranded,
            )
        if processes > 1:
            return supervise(args, shard, processes, state_dir)
        worker = Worker(
            args.config,
            state_dir,
            shard,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            open_timeout_s=args.open_timeout,
            read_timeout_s=args.read_timeout,
            freeze_after_s=args.freeze_after,
            fleet_id=args.worker_id if args.fleet else None,
            health_port=args.health_port,
            health_host=args.health_host,
            inference_cores=args.inference_cores,
        )
    except (ConfigError, ValueError) as exc:
        err(str(exc))
        return EXIT_USAGE
    except (ModelError, OutboxError) as exc:
        err(str(exc))
        return EXIT_FAILED
    worker.install_signal_handlers()
    try:
        worker.run()
    except OSError as exc:  # e.g. the metrics port is taken
        err(str(exc))
        return EXIT_FAILED
    return EXIT_OK


def supervise(args: argparse.Namespace, shard: Shard, processes: int, state_dir: Path) -> int:
    """`run` over `processes` children (streams/live/supervisor.py): child I runs shard
    (S + N*I)/(N*P) of shard S/N, which is the cameras of S/N split P ways by the same stable
    hash, or is fleet member `<worker-id>.<I>`; each with its state in STATE_DIR/process-I."""
    from detector.engine import available_cores
    from streams.live.supervisor import Supervisor, cores_per_process, state_of

    cores = args.inference_cores or cores_per_process(available_cores(), processes)

    def command(index: int, metrics_port: int, health_port: int) -> list[str]:
        argv = [sys.executable, "-m", "streams.cli", *(["-v"] if args.verbose else []), "run"]
        argv += ["--config", str(args.config), "--processes", "1"]
        argv += ["--state-dir", str(state_of(state_dir, index))]
        argv += ["--metrics-port", str(metrics_port), "--health-port", str(health_port)]
        argv += ["--open-timeout", str(args.open_timeout), "--read-timeout", str(args.read_timeout)]
        argv += ["--freeze-after", str(args.freeze_after), "--inference-cores", str(cores)]
        if args.fleet:
            return [*argv, "--fleet", "--worker-id", f"{args.worker_id}.{index}"]
        return [*argv, "--shard", f"{shard.index + shard.count * index}/{shard.count * processes}"]

    supervisor = Supervisor(
        processes,
        command,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        health_port=args.health_port,
        health_host=args.health_host,
    )
    supervisor.install_signal_handlers()
    try:
        code = supervisor.run()
    except OSError as exc:  # e.g. the metrics port is taken
        err(str(exc))
        return EXIT_FAILED
    return EXIT_OK if code == 0 else EXIT_FAILED


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def outbox(args: argparse.Namespace) -> int:
    from api.client.outbox import OUTBOX_FILE, Outbox, OutboxError

    state = args.state_dir or default_state_dir(args.shard)
    path = state / OUTBOX_FILE
    if not path.exists():
        per_process = sorted(str(p.parent) for p in state.glob(f"process-*/{OUTBOX_FILE}"))
        if per_process:  # a worker of several processes (run --processes)
            err(f"no outbox at {path}: one per process, --state-dir {' or '.join(per_process)}")
        else:
            err(f"no outbox at {path}")
        return EXIT_USAGE
    try:
        box = Outbox(path)
    except OutboxError as exc:
        err(str(exc))
        return EXIT_FAILED
    try:
        if args.action == "retry":
            moved = box.retry_dead(args.ids or None)
            print(f"{moved} dead letter(s) queued again")
            return EXIT_OK
        counts = box.counts()
        print(
            f"{path}: {counts['outbox']} pending, {counts['dead_letter']} dead, "
            f"{counts['delivered']} delivered (last 7 days)"
        )
        held = box.held()
        for item in box.pending():
            error = f"  last error: {item.last_error}" if item.last_error else ""
            when = (
                f"waits behind dead {held[item.id]}"
                if item.id in held
                else f"next {_when(item.next_attempt_at)}"
            )
            print(
                f"pending {item.id:>6} {item.kind:5} {item.incident_id}  attempts {item.attempts}"
                f"  {when}{error}"
            )
        for dead in box.dead():
            print(
                f"dead    {dead.id:>6} {dead.kind:5} {dead.incident_id}  status {dead.status}"
                f"  at {_when(dead.failed_at)}  reason: {dead.reason}"
            )
        return EXIT_OK
    finally:
        box.close()
