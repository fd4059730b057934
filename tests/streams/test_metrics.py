"""The worker's Prometheus metrics, read from its registry in Prometheus' text format."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.motion import MotionGate
from detector.types import Frame
from streams.metrics import WorkerMetrics
from streams.rtsp import RtspSource
from streams.scenes import video_frames


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
