"""Several worker processes on one host: `streetwatch run --processes N` (N > 1).

One Python process tops out at about one core however many the host has (the GIL shared by
the loop and every camera's receive thread; benchmarks/RESULTS.md, section 4c), so the
supervisor starts N children, each today's single-process worker (`streams.live.worker`) over
its own stable share of the cameras and its own state sub-directory (outbox, saved sites,
evidence): exactly-once delivery and the outbox work per child as they do for one worker.

The supervisor only starts, watches and stops children and answers for the host:

- a child that exits while the host runs is started again with capped, jittered backoff
  (reset once it has lived `HEALTHY_AFTER_S`); it gets its cameras and its state directory
  back, so its open sites resume the way a restarted worker's do;
- SIGTERM/SIGINT are passed on and the supervisor waits while each child hands its open
  incidents to its outbox; SIGHUP is passed on (each child also watches the config file);
- children get SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG), never orphans;
- one `/healthz` (healthy while every child answers healthy) and one `/metrics`: the
  children's own endpoints on loopback ports, read at scrape time and merged, each series
  labelled with its `process`. Not Prometheus' multiprocess mode: the per-camera series are
  read from live objects at scrape time (streams.live.metrics.CameraCollector), which that
  mode cannot carry, and a restarted child would leave its dead files behind.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from api.client.backoff import Backoff
from api.client.outbox import OUTBOX_FILE, Outbox, OutboxError
from streams.live.health_http import serve_health

log = logging.getLogger(__name__)

CAMERAS_PER_PROCESS = 32  # fewer per child buys nothing: one process carries ~90 (RESULTS 4c)
RESTART_BACKOFF = Backoff(initial_s=1.0, max_s=60.0)
HEALTHY_AFTER_S = 60.0  # a child that lived this long restarts from the shortest backoff
POLL_S = 0.5
SCRAPE_TIMEOUT_S = 2.0
_PR_SET_PDEATHSIG = 1


def default_processes(cores: int, cameras: int | None) -> int:
    """One process per core, as long as each gets CAMERAS_PER_PROCESS cameras; 1 where the
    cameras are not known in advance (a fleet worker: it gets them from the API)."""
    if cameras is None:
        return 1
    return max(1, min(cores, cameras // CAMERAS_PER_PROCESS))


def cores_per_process(cores: int, processes: int) -> int:
    """Each child's share of the cores for inference, so N children's ONNX Runtime threads
    add up to the host's cores rather than N times them."""
    return max(1, cores // processes)


def state_of(state_dir: Path, index: int) -> Path:
    """Process `index`'s own state directory."""
    return state_dir / f"process-{index}"


def stranded_outboxes(state_dir: Path, processes: int) -> list[str]:
    """What an outbox in `state_dir` holds that no process of a run with `processes` will
    deliver (left there by a run with another number of processes), one line per outbox."""
    used = {state_dir} if processes == 1 else {state_of(state_dir, i) for i in range(processes)}
    found = []
    for path in [state_dir / OUTBOX_FILE, *sorted(state_dir.glob(f"process-*/{OUTBOX_FILE}"))]:
        if path.parent in used or not path.exists():
            continue
        try:
            box = Outbox(path)
        except OutboxError as exc:
            found.append(f"{path}: unreadable ({exc})")
            continue
        try:
            pending = box.counts()["outbox"]
        finally:
            box.close()
        if pending:
            found.append(f"{path}: {pending} items to deliver")
    return found


ChildCommand = Callable[[int, int, int], list[str]]
"""The command of child `index`, given the loopback ports for its metrics and /healthz."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(slots=True)
class Child:
    index: int
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    health_port: int = 0
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each less than HEALTHY_AFTER_S after its start
    restart_at: float | None = None
    exits: int = 0


class Supervisor:
    def __init__(
        self,
        processes: int,
        command: ChildCommand,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        health_port: int | None = None,
        health_host: str = "127.0.0.1",
    ) -> None:
        if processes < 2:
            raise ValueError(f"a supervisor runs 2 or more processes, not {processes}")
        self.command = command
        self.children = [Child(i) for i in range(processes)]
        self.metrics_port, self.metrics_host = metrics_port, metrics_host
        self.health_port, self.health_host = health_port, health_host
        # Plain flags, not Events: a signal's handler runs on the main thread between two
        # bytecodes, possibly while the loop holds an Event's non-reentrant lock (a hang).
        self._stopping = False
        self._hangup = False
        # One client for every read of the children's endpoints: `httpx.get` builds a client,
        # and with it an SSL context from the CA bundle, per call: 40% of the supervisor's
        # CPU in a py-spy profile at 160 cameras scraped every second. Loopback only, so no
        # proxy from the environment.
        self.http = httpx.Client(timeout=SCRAPE_TIMEOUT_S, trust_env=False)
        self.registry = CollectorRegistry()
        self.restarts = Counter(
            "streetwatch_process_restarts",
            "worker processes started again after they exited",
            ["process"],
            registry=self.registry,
        )
        self.processes = Gauge(
            "streetwatch_processes", "worker processes this host runs", registry=self.registry
        )
        self.processes.set(processes)
        self.registry.register(ChildrenCollector(self))

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "_hangup", True))

    def stop(self) -> None:
        """Any thread, or a signal's handler: the loop ends within POLL_S."""
        self._stopping = True

    def run(self) -> int:
        """Runs the children until stopped; the exit code is the worst of their last exits."""
        if self.metrics_port is not None:
            start_http_server(self.metrics_port, addr=self.metrics_host, registry=self.registry)
        health = None
        if self.health_port is not None:
            health = serve_health(self.health_port, self.health_host, self.healthy)
        try:
            for child in self.children:
                self._start(child)
            log.info("supervisor: %d worker processes", len(self.children))
            while not self._stopping:
                if self._hangup:
                    self._hangup = False
                    self._signal_all(signal.SIGHUP)
                for child in self.children:
                    self._watch(child)
                time.sleep(POLL_S)  # a signal's handler runs in it; the flag is read next
        finally:
            self._signal_all(signal.SIGTERM)
            codes = [self._wait(child) for child in self.children]
            if health is not None:
                health.shutdown()
            self.http.close()
        return max(codes, default=0)

    # -- children ------------------------------------------------------------------------

    def _start(self, child: Child) -> None:
        # Fresh ports at every start: a port the last one held may still be in TIME_WAIT.
        child.metrics_port, child.health_port = _free_port(), _free_port()
        argv = self.command(child.index, child.metrics_port, child.health_port)
        child.process = subprocess.Popen(argv, preexec_fn=_die_with_parent)
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("supervisor: process %d started (pid %d)", child.index, child.process.pid)

    def _watch(self, child: Child) -> None:
        if child.restart_at is not None:
            if time.monotonic() >= child.restart_at:
                self.restarts.labels(str(child.index)).inc()
                self._start(child)
            return
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return
        child.exits += 1
        lived = time.monotonic() - child.started_at
        child.failures = 1 if lived >= HEALTHY_AFTER_S else child.failures + 1
        delay = RESTART_BACKOFF.delay(child.failures - 1)
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        log.error(
            "supervisor: process %d (pid %d) ended after %.0f s (%s); starting it again in %.1f s",
            child.index,
            child.process.pid,
            lived,
            how,
            delay,
        )
        child.restart_at = time.monotonic() + delay

    def _signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signum)

    def _wait(self, child: Child) -> int:
        """Waits for a stopping child: it hands its open incidents to its outbox first."""
        if child.process is None or child.restart_at is not None:
            return 0  # not running (waiting for its restart)
        code = child.process.wait()
        return 1 if code < 0 else code

    # -- the host's endpoints ------------------------------------------------------------

    def running(self) -> list[Child]:
        return [c for c in self.children if c.process is not None and c.restart_at is None]

    def healthy(self) -> tuple[bool, dict[str, object]]:
        """For /healthz: healthy while every child answers that it is (a child waiting for
        its restart is not)."""
        details: dict[str, dict[str, object]] = {}
        ok, cameras = True, 0
        for child in self.children:
            answer: dict[str, object] = {"status": "restarting"}
            if child.restart_at is None and child.process is not None:
                try:
                    answer = self.http.get(f"http://127.0.0.1:{child.health_port}/healthz").json()
                except (httpx.HTTPError, ValueError) as exc:
                    answer = {"status": "unreachable", "error": str(exc)}
            ok = ok and answer.get("status") == "ok"
            count = answer.get("cameras")
            cameras += count if isinstance(count, int) else 0
            pid = child.process.pid if child.process is not None else None
            details[str(child.index)] = {**answer, "pid": pid, "restarts": child.exits}
        return ok, {"cameras": cameras, "processes": details}


class ChildrenCollector(Collector):
    """Every running child's metrics, read from its endpoint at scrape time, each sample
    labelled with its `process`; families of the same name merged into one."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for child in self.supervisor.running():
            try:
                text = self.supervisor.http.get(
                    f"http://127.0.0.1:{child.metrics_port}/metrics"
                ).text
            except httpx.HTTPError as exc:
                log.warning("supervisor: process %d's metrics unreadable (%s)", child.index, exc)
                continue
            process = str(child.index)
            for family in text_string_to_metric_families(text):
                samples = [
                    Sample(s.name, {**s.labels, "process": process}, s.value, s.timestamp)
                    for s in family.samples
                ]
                if (into := merged.get(family.name)) is None:
                    family.samples = samples
                    merged[family.name] = family
                else:
                    into.samples.extend(samples)
        yield from merged.values()
