"""The worker's Prometheus metrics, read from its registry in Prometheus' text format."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.motion import MotionGate
from detector.types import Frame
from streams.live.metrics import WorkerMetrics
from streams.sources.rtsp import RtspSource
from streams.sources.sampling import Sampling
from tests.support.scenes import video_frames


def test_gated_samples_are_counted_per_camera(vtest_avi: Path) -> None:
    image = next(video_frames(vtest_avi))
    gate = MotionGate()
    moved = [gate.moved(Frame("cam-a", i, i * 0.5, image)) for i in range(3)]
    assert moved == [True, False, False]  # the same picture: inferred once, then gated
    cameras = [
        (RtspSource("cam-a", "rtsp://127.0.0.1:9/a"), gate),
        (RtspSource("cam-b", "rtsp://127.0.0.1:9/b"), None),  # motion_gate off
    ]
    text = generate_latest(WorkerMetrics(lambda: cameras).registry).decode()
    samples = {
        (s.name, s.labels.get("camera")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("streetwatch_samples_gated_total", "cam-a")] == 2
    assert ("streetwatch_samples_gated_total", "cam-b") not in samples
    assert samples[("streetwatch_samples_produced_total", "cam-b")] == 0
    assert samples[("streetwatch_camera_up", "cam-a")] == 0  # never started


def test_a_removed_cameras_series_are_dropped() -> None:
    metrics = WorkerMetrics(lambda: [])
    for camera in ("cam-a", "cam-b"):
        metrics.processed.labels(camera).inc()
        metrics.lag.labels(camera).set(0.2)
        metrics.health.labels(camera, "frozen").inc()
        metrics.incidents.labels(camera, "garbage", "confirmed").inc()
    metrics.forget_camera("cam-a")
    text = generate_latest(metrics.registry).decode()
    assert 'camera="cam-a"' not in text
    assert text.count('camera="cam-b"') >= 4


def test_sampling_metrics_follow_each_cameras_plan() -> None:
    source = RtspSource("cam-a", "rtsp://127.0.0.1:9/a", Sampling(fps=2.0))
    plan = source.plan
    plan.took(0.0)  # a sample at 0 s, then the runtime's idle interval
    plan.settle(6.0)
    plan.took(0.5)
    assert plan.skip_group(1.0) is False  # the GOP is not yet known
    assert plan.skip_group(3.0) is True  # 3-5 s holds no sample: due at 6.5 s
    metrics = WorkerMetrics(lambda: [(source, None)])
    metrics.stretch.set(1.25)
    text = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, s.labels.get("camera")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("streetwatch_sample_interval_seconds", "cam-a")] == 6.0
    assert samples[("streetwatch_groups_undecoded_total", "cam-a")] == 1
    assert samples[("streetwatch_sample_stretch", None)] == 1.25


def _thread_cpu(metrics: WorkerMetrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        s.labels["role"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "streetwatch_thread_cpu_seconds_total"
    }


def test_cpu_is_told_by_thread_role_and_an_ended_thread_keeps_its_share() -> None:
    """A camera's receiving thread burns CPU: it shows under `receive` (not the loop), and
    stays counted after the thread ends, so the counter never goes back."""
    metrics = WorkerMetrics(lambda: [])
    busy_s = 0.3
    running, done = threading.Event(), threading.Event()

    def burn() -> None:
        started = time.thread_time()
        running.set()
        while time.thread_time() - started < busy_s:
            pass
        done.wait(10)

    thread = threading.Thread(target=burn, name="rtsp-cam-x")
    before = _thread_cpu(metrics)
    thread.start()
    running.wait(10)
    time.sleep(busy_s + 0.2)  # it has burnt its share and waits
    during = _thread_cpu(metrics)
    done.set()
    thread.join()
    after = _thread_cpu(metrics)
    assert during["receive"] - before.get("receive", 0.0) >= busy_s * 0.8
    assert after["receive"] >= during["receive"]
    assert during["loop"] - before["loop"] < busy_s / 2  # this (main) thread only waited
