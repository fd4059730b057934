"""What the capacity and soak sections share: loopback cameras, a real intake server, and
`streetwatch run` in a subprocess, watched from outside through its /metrics and /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.server.settings import Settings
from benchmarks.common import ALL_CHECKS, ROOT, clip_size, machine
from benchmarks.inference import INT8
from detector.engine import available_cores
from tests.support.api import run_server
from tests.support.testcam import RtspServer, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_NICE = 10  # the cameras stand in for other machines: the worker comes first
# Mounts the loopback cameras share: their keyframes arrive in this many groups a GOP, the
# cameras of a group in step (a burstier load than real cameras, never a lighter one).
MOUNTS = 16
# What the benchmarks run live (besides keyframe sampling): the int8 model on aspect-preserving
# input, section 3's fastest variant with >= 95% agreement.
RECOMMENDED_DETECTOR = {"rect": True}
RECOMMENDED = {"model": INT8, "detector": RECOMMENDED_DETECTOR}
RECOMMENDED_TEXT = f"model {INT8}, `detector: {{rect: true}}`"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and every live descendant: a worker run with --processes > 1 is
    a supervisor whose children do the work, and a worker receiving with ffmpeg has an ffmpeg
    child per camera."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += children.get(current, [])
    return total


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in a process group (the server and its ffmpegs)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def describe(clip: Path) -> str:
    """Machine, load and input line of a live section, taken at its start."""
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    w, h = clip_size(clip)
    return (
        f"Machine: {machine()}; load average at start {load} (1 / 5 / 15 min; other "
        f"work shares the {available_cores()} cores). Input: {clip.name} (the street clip at "
        f"{w}x{h}, H.264, 25 fps, a keyframe every 2 s) looped by loopback RTSP cameras, "
        f"`scripts/rtsp_server.py --passthrough` (no re-encoding), niced +{SERVER_NICE}, "
        f"each camera its own RTSP session over TCP, the cameras taking turns on at most "
        f"{MOUNTS} shared mounts (keyframes in {MOUNTS} groups a GOP). "
        f"Worker: `streetwatch run` in its own process ({RECOMMENDED_TEXT}), posting to a real "
        f"intake server (SQLite)."
    )


@dataclass(frozen=True)
class Scrape:
    """One read of the worker's /metrics: (metric, camera label or "") -> value, summed over
    the worker's processes, and each metric's highest series (a gauge such as the overload
    stretch is per process: two processes at 1.0 are not a stretch of 2)."""

    at: float  # time.monotonic()
    values: dict[tuple[str, str], float]
    peaks: dict[str, float]
    thread_cpu_s: dict[str, float]  # the worker's CPU by its threads' role (metrics.ROLES)

    def per_camera(self, metric: str) -> dict[str, float]:
        return {cam: v for (name, cam), v in self.values.items() if name == metric and cam}

    def total(self, metric: str) -> float:
        return sum(v for (name, _), v in self.values.items() if name == metric)

    def highest(self, metric: str) -> float:
        return self.peaks.get(metric, 0.0)


def parse_metrics(text: str, at: float) -> Scrape:
    """Samples summed per (sample name, camera label), e.g. ("streetwatch_frames_total", id),
    and the highest sample of each name."""
    values: dict[tuple[str, str], float] = {}
    peaks: dict[str, float] = {}
    roles: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("camera", ""))
            values[key] = values.get(key, 0.0) + sample.value
            peaks[sample.name] = max(peaks.get(sample.name, sample.value), sample.value)
            if sample.name == "streetwatch_thread_cpu_seconds_total":
                role = sample.labels["role"]
                roles[role] = roles.get(role, 0.0) + sample.value
    return Scrape(at, values, peaks, roles)


def camera_config(
    cam_id: str,
    url: str,
    sample: dict[str, object],
    size: tuple[int, int],
    top: float = 0.0,
) -> dict[str, object]:
    """One camera watching its `size` (width, height) frame, below `top` (a share of its
    height), for every check."""
    w, h = size
    y = round(top * h)
    return {
        "id": cam_id,
        "source": url,
        "location": {"lat": 26.58, "lon": 101.72, "grid": "510402001001"},
        "sample": sample,
        "zones": [
            {
                "id": "street",
                "polygon": [[0, y], [w, y], [w, h], [0, h]],
                "checks": list(ALL_CHECKS),
            }
        ],
    }


class LiveWorker:
    """`streetwatch run` on a generated config, in its own process; its log goes to a file."""

    def __init__(
        self,
        workdir: Path,
        api_url: str,
        key: str,
        cameras: list[dict],
        extra: dict | None = None,
        cpus: set[int] | None = None,
        code: Path = ROOT,
    ) -> None:
        """cpus: the cores the worker (and its children) may run on, like `taskset -c`.
        code: the source tree the worker runs from (another revision's, common.checkout)."""
        self.workdir = workdir
        self.cpus = cpus
        self.code = code
        self.config = workdir / "worker.yaml"
        settings = {**RECOMMENDED, **(extra or {}), "api": {"url": api_url}, "cameras": cameras}
        self.config.write_text(yaml.safe_dump(settings))
        self.key = key
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = os.environ | {"STREETWATCH_API_KEY": self.key, "PYTHONPATH": str(self.code)}
        port = self.metrics_url.rsplit(":", 1)[1].split("/")[0]
        with open(self.workdir / "worker.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "run", "--config", str(self.config),
                 "--state-dir", str(self.workdir / "state"), "--metrics-port", port],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.code,
                preexec_fn=None if self.cpus is None else self._pin,
            )  # fmt: skip

    def _pin(self) -> None:
        assert self.cpus is not None
        os.sched_setaffinity(0, self.cpus)

    def scrape(self) -> Scrape | None:
        """The metrics now, or None while the worker is not serving them yet."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the worker exited ({self.process.returncode}):\n{self.log_tail()}")
        try:
            text = httpx.get(self.metrics_url, timeout=5).text
        except httpx.HTTPError:
            return None
        return parse_metrics(text, time.monotonic())

    def metrics(self) -> Scrape:
        """The metrics now; a loaded worker may miss a scrape's timeout, so it is retried."""
        for _ in range(10):
            if scrape := self.scrape():
                return scrape
        raise RuntimeError(f"no metrics from the worker:\n{self.log_tail()}")

    def wait_all_processing(self, cameras: int, timeout_s: float) -> Scrape:
        """Waits until every camera has had a sample through the detector."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            scrape = self.scrape()
            if scrape and len(scrape.per_camera("streetwatch_samples_processed_total")) >= cameras:
                return scrape
            time.sleep(1.0)
        raise RuntimeError(f"not every camera delivered within {timeout_s:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        log = self.workdir / "worker.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def intake() -> Iterator[tuple[str, str]]:
    """A real intake server (SQLite, in this process): its url and an ingest key."""
    with tempfile.TemporaryDirectory() as tmp, run_server(Settings(data_dir=Path(tmp))) as server:
        yield server.url, server.create_key("ingest")


@contextmanager
def cameras(clip: Path, count: int, keyint_s: float) -> Iterator[tuple[RtspServer, list[str]]]:
    """`count` pass-through cameras serving `clip`, niced, their keyframes spread over a GOP.

    The cameras share at most MOUNTS mounts, each one shared media (one ffmpeg pacing it, one
    parser and payloader), taken in turn; every camera still has its own RTSP session, TCP
    connection and packets. One mount per camera cost the rig about as much CPU per camera as
    the worker's whole pipeline on sub-streams (one process and its wake-ups per camera),
    which machines watching real cameras never pay."""
    mounts = {f"mount-{i:02d}": clip for i in range(min(count, MOUNTS))}
    names = list(mounts)
    with RtspServer(mounts, passthrough=True, stagger_s=keyint_s) as server:
        assert server.process is not None
        # Every thread of its group now, and the ffmpegs it starts for each client inherit it.
        os.setpriority(os.PRIO_PGRP, server.process.pid, SERVER_NICE)
        yield server, [server.url(names[i % len(names)]) for i in range(count)]


@contextmanager
def live_worker(
    api: tuple[str, str],
    cams: list[dict],
    extra: dict | None = None,
    cpus: set[int] | None = None,
    code: Path = ROOT,
) -> Iterator[LiveWorker]:
    """`streetwatch run` on `cams`, with `extra` top-level settings (e.g. `rules`), on `cpus`
    (default every core), from the source tree `code` (default this one)."""
    with tempfile.TemporaryDirectory(prefix="sw-live-") as tmp:
        worker = LiveWorker(Path(tmp), *api, cams, extra, cpus, code)
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
