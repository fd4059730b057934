"""Prometheus metrics of a live worker, per camera and per worker."""

from __future__ import annotations

import os
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from detector.motion import MotionGate
from streams.sources.rtsp import RtspSource

CameraParts = Callable[[], list[tuple[RtspSource, MotionGate | None]]]
"""Each camera's source and motion gate (None where gating is off), read at scrape time."""

# A thread's role, by the start of its name: the worker's threads are named after their
# camera, batch or job. Threads Python did not start (a library's own) are "native".
ROLES = (
    ("rtsp-", "receive"),  # a camera's receiving and decoding (streams/sources/rtsp.py)
    ("batch", "inference"),  # the worker's batches (streams/live/worker.py)
    ("infer", "inference"),  # an engine's parallel runs (detector/engine.py)
    ("MainThread", "loop"),  # scheduling, each sample's tracking, static stage and rules
)
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def thread_role(name: str | None) -> str:
    if name is None:
        return "native"
    return next((role for prefix, role in ROLES if name.startswith(prefix)), "other")


def _thread_cpu_s(tid: int) -> float | None:
    """The thread's user and system CPU seconds from /proc, None once it has ended."""
    try:
        with open(f"/proc/self/task/{tid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


class ThreadCpuCollector(Collector):
    """This process's CPU by what its threads do (`ROLES`), read from /proc at scrape time:
    whether receiving, inference or the loop bounds a worker, on any deployment (Linux).
    A thread that ends keeps what it used in its role's total, as last scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # scrapes may overlap
        self._seen: dict[int, tuple[str, float]] = {}  # thread id -> (role, CPU seconds)
        self._ended: Tally[str] = Tally()

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            tids = [int(tid) for tid in os.listdir("/proc/self/task")]
        except OSError:  # not Linux: nothing to say
            return
        # Names after ids: a thread started in between is named, not taken for a native one.
        names = {t.native_id: t.name for t in threading.enumerate()}
        with self._lock:
            now = {}
            for tid in tids:
                if (cpu := _thread_cpu_s(tid)) is not None:
                    now[tid] = (thread_role(names.get(tid)), cpu)
            for tid, (role, cpu) in self._seen.items():
                # Ended, or its id taken by a new thread since (it used less, or does other work).
                if tid not in now or now[tid][1] < cpu or now[tid][0] != role:
                    self._ended[role] += cpu
            self._seen = now
            totals = Tally(self._ended)
            for role, cpu in now.values():
                totals[role] += cpu
        family = CounterMetricFamily(
            "streetwatch_thread_cpu_seconds",
            "CPU of this process's threads by role: receive, inference, loop, other, native",
            labels=["role"],
        )
        for role, cpu in sorted(totals.items()):
            family.add_metric([role], cpu)
        yield family


class CameraCollector(Collector):
    """Reads each camera's own counters at scrape time, so nothing is counted twice."""

    def __init__(self, cameras: CameraParts) -> None:
        self.cameras = cameras

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counters = {
            "produced": ("streetwatch_samples_produced", "samples decoded and offered"),
            "dropped": ("streetwatch_samples_dropped", "samples replaced before inference"),
            "reconnects": ("streetwatch_reconnects", "reconnections after a lost stream"),
            "decode_errors": ("streetwatch_decode_errors", "packets the decoder rejected"),
        }
        families = {
            field: CounterMetricFamily(name, doc, labels=["camera"])
            for field, (name, doc) in counters.items()
        }
        gated = CounterMetricFamily(
            "streetwatch_samples_gated",
            "samples the motion gate kept from inference (nothing moved)",
            labels=["camera"],
        )
        age = GaugeMetricFamily(
            "streetwatch_last_frame_age_seconds",
            "time since the last decoded frame",
            labels=["camera"],
        )
        up = GaugeMetricFamily("streetwatch_camera_up", "1 while pictures flow", labels=["camera"])
        interval = GaugeMetricFamily(
            "streetwatch_sample_interval_seconds",
            "the interval planned after the last sample (rules, overload stretch included)",
            labels=["camera"],
        )
        undecoded = CounterMetricFamily(
            "streetwatch_groups_undecoded",
            "groups of pictures (with keyframe sampling: keyframes) left undecoded, no sample due",
            labels=["camera"],
        )
        for source, gate in self.cameras():
            for field, family in families.items():
                family.add_metric([source.camera_id], getattr(source.stats, field))
            if gate is not None:
                gated.add_metric([source.camera_id], gate.skipped)
            last = source.stats.last_frame_age_s
            if last is not None:
                age.add_metric([source.camera_id], last)
            up.add_metric([source.camera_id], float(source.connected))
            interval.add_metric([source.camera_id], source.plan.planned_s)
            undecoded.add_metric([source.camera_id], source.plan.skipped_groups)
        yield from families.values()
        yield from (gated, age, up, interval, undecoded)


class WorkerMetrics:
    def __init__(self, cameras: CameraParts) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.processed = Counter(
            "streetwatch_samples_processed",
            "samples run through the detector",
            ["camera"],
            registry=r,
        )
        self.lag = Gauge(
            "streetwatch_lag_seconds",
            "capture to end of inference, last sample",
            ["camera"],
            registry=r,
        )
        self.inference = Histogram(
            "streetwatch_inference_seconds",
            "one batched inference call (gated samples not included)",
            buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
            registry=r,
        )
        self.inferred = Counter(
            "streetwatch_inferred_frames",
            "frames each model inferred (a camera of two models counts in both)",
            ["model"],
            registry=r,
        )
        self.batch = Histogram(
            "streetwatch_batch_size",
            "frames per inference call (gated samples not included)",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=r,
        )
        self.health = Counter(
            "streetwatch_health_events", "camera health events", ["camera", "kind"], registry=r
        )
        self.incidents = Counter(
            "streetwatch_incidents", "incident events", ["camera", "type", "event"], registry=r
        )
        self.posted = Counter(
            "streetwatch_cases_posted", "outbox items the API accepted", registry=r
        )
        self.outbox_depth = Gauge(
            "streetwatch_outbox_depth", "items waiting for the API", registry=r
        )
        self.dead_letters = Gauge(
            "streetwatch_outbox_dead_letters", "items the API refused for good", registry=r
        )
        self.dead_letters_dropped = Gauge(
            "streetwatch_outbox_dead_letters_dropped",
            "dead letters dropped, oldest first, over the outbox's cap (since start)",
            registry=r,
        )
        self.cameras = Gauge("streetwatch_cameras", "cameras this worker runs", registry=r)
        self.stretch = Gauge(
            "streetwatch_sample_stretch",
            "factor on every camera's sample interval while the worker is behind (1: none)",
            registry=r,
        )
        self.stretch.set(1.0)
        r.register(CameraCollector(cameras))
        r.register(ThreadCpuCollector())

    def forget_camera(self, camera_id: str) -> None:
        """Drops a removed camera's series, so they don't linger until the worker restarts."""
        for metric in (self.processed, self.lag, self.health, self.incidents):
            metric.remove_by_labels({"camera": camera_id})

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)
