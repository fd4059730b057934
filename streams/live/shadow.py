"""Shadow mode: a candidate model judging the live worker's frames beside the live model.

The candidate runs on the same samples, through the same zones and rules (its own tracker
and sites, on the live runtime's clock, so the same occupation gets the same incident id
under both). Its incidents are logged and counted in
`streetwatch_shadow_incidents_total{camera,type,event}`, beside the live
`streetwatch_incidents_total`; nothing is written as evidence, queued or posted. It costs
one more inference per sample of the cameras it runs on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from detector.types import Frame
from streams.camera.engines import load
from streams.camera.runtime import CameraRuntime
from streams.config import CameraConfig, Config

log = logging.getLogger(__name__)


class Shadow:
    def __init__(self, config: Config, registry: CollectorRegistry) -> None:
        assert config.shadow is not None
        self.cameras = set(config.shadow.cameras) if config.shadow.cameras else None
        self.config = config
        loaded = load(config, config.shadow.model)
        self.engine, self.labels = loaded.engine, loaded.labels
        self.model = self.engine.manifest.name
        # The candidate's own runtime per camera (its tracker and sites), not the live camera's.
        self.runtimes: dict[str, CameraRuntime] = {}
        self.incidents = Counter(
            "streetwatch_shadow_incidents",
            "incident events of the shadow (candidate) model, never posted",
            ["camera", "type", "event"],
            registry=registry,
        )
        self.inference = Histogram(
            "streetwatch_shadow_inference_seconds",
            "shadow model inference per batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )

    def wants(self, camera_id: str) -> bool:
        return self.cameras is None or camera_id in self.cameras

    def observe(self, batch: Sequence[tuple[CameraConfig, Frame, datetime]]) -> None:
        """The candidate's verdict on samples the live model just judged: (camera, frame,
        the live runtime's epoch) each."""
        chosen = [item for item in batch if self.wants(item[0].id)]
        if not chosen:
            return
        started = time.perf_counter()
        found = self.engine.detect([frame.image for _, frame, _ in chosen])
        self.inference.observe(time.perf_counter() - started)
        for (camera, frame, epoch), detections in zip(chosen, found, strict=True):
            runtime = self.runtimes.get(camera.id)
            if runtime is None or runtime.camera != camera or runtime.epoch != epoch:
                runtime = CameraRuntime(camera, self.config, self.labels)
                runtime.start(epoch)
                self.runtimes[camera.id] = runtime
            for event in runtime.process(frame, detections):
                i = event.incident
                self.incidents.labels(camera.id, i.type, event.kind).inc()
                log.info(
                    "shadow %s: camera %s: %s %s in zone %s (%s %.2f): %s (not posted)",
                    self.model,
                    camera.id,
                    i.type,
                    event.kind,
                    i.zone_id,
                    i.class_name,
                    i.confidence,
                    i.id,
                )
            for incident in runtime.open_incidents():
                incident.evidence.clear()  # frames are never written: do not hold them

    def close(self, registry: CollectorRegistry) -> None:
        """Takes its metrics out of the registry (before a replacement registers them)."""
        registry.unregister(self.incidents)
        registry.unregister(self.inference)

    def forget(self, camera_id: str) -> None:
        self.runtimes.pop(camera_id, None)
