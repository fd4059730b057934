"""The live worker: many RTSP cameras in one process, one batched inference loop.

Each camera decodes on its own thread into a latest-frame mailbox (streams/rtsp.py); the loop
takes whatever samples are new across cameras, runs them through the engine as one batch,
then through each camera's pipeline (the same tracker, zones and rules as `score`).
Confirmed and cleared incidents are written as evidence and queued in the durable outbox
(api/client/outbox.py), which a background thread drains into the intake API.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from api.client import IntakeClient
from api.client.outbox import Deliverer, Outbox, OutboxError
from api.contract import CaseReport, Observation
from detector.engine import Engine
from detector.incidents import Incident, IncidentEvent
from detector.types import Detections, Frame
from models.errors import ModelError
from streams.config import CameraConfig, Config, ConfigError, load_config
from streams.evidence import EvidenceWriter
from streams.fleet import FleetCameras, reconcile
from streams.health import HealthEvent, report
from streams.health_http import serve_health
from streams.health_report import HealthReporter
from streams.metrics import WorkerMetrics
from streams.model_set import ENGINE_SETTINGS, ModelBatch, ModelSet
from streams.record import RecordStream
from streams.rtsp import RtspSource
from streams.runtime import CameraRuntime, sampling_for
from streams.shadow import Shadow
from streams.shedding import LoadShedder
from streams.site_store import CameraState, SiteStore
from streams.sources import Sampling
from streams.suppressions import Feedback, SuppressionCache

log = logging.getLogger(__name__)

OBSERVE_EVERY_S = 60.0  # how often an open incident's last_seen goes to the API
BATCH_BOUND_S = 0.5  # the longest a batch's inference may take (it sizes the batches)
MAX_BATCH = 64
RELOAD_POLL_S = 2.0
LOOP_STUCK_S = 60.0  # an inference loop that has not turned for this long is stuck
POLL_S = 0.01  # how often an idle loop, or one waiting on inference, looks for new samples


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's part of the fleet: cameras whose stable hash falls on `index` of `count`."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(v) for v in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like I/N, got {text!r}") from None
        if not 0 <= index < count:
            raise ValueError(f"--shard {text}: need 0 <= I < N")
        return cls(index, count)

    def owns(self, camera_id: str) -> bool:
        digest = hashlib.sha256(camera_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index


def _stream_of(camera: CameraConfig) -> tuple[object, ...]:
    """What a camera's streams depend on: changing it restarts them."""
    return camera.source, camera.sample, camera.record_source


@dataclass(slots=True)
class _Batch:
    """Samples in inference: settled in the order they were submitted."""

    samples: list[tuple[LiveCamera, Frame]]
    gated: ModelBatch
    future: Future[list[list[Detections]]]


@dataclass(slots=True)
class LiveCamera:
    config: CameraConfig
    source: RtspSource
    runtime: CameraRuntime  # started at the first frame: its epoch is then
    record: RecordStream | None = None  # the main stream, for evidence (record_source)
    reports: dict[str, CaseReport] = field(default_factory=dict)  # open incidents, by id
    observed_at: dict[str, float] = field(default_factory=dict)  # last observation sent
    unsaved: bool = False  # its state changed since it was last saved


class Worker:
    def __init__(
        self,
        config_path: Path,
        state_dir: Path,
        shard: Shard = Shard(),
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        api_key: str | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        freeze_after_s: float = 60.0,
        fleet_id: str | None = None,
        health_port: int | None = None,
        health_host: str = "127.0.0.1",
    ) -> None:
        """fleet_id: take the cameras from the intake API as this fleet worker (the config's
        own `cameras` are then ignored) instead of from the config file."""
        self.config_path = config_path
        self.config = load_config(config_path)
        if self.config.api is None:
            raise ConfigError(str(config_path), ["api: required by `streetwatch run`"])
        if not self.config.cameras and not fleet_id:
            raise ConfigError(str(config_path), ["cameras: required unless `run --fleet`"])
        self.shard = shard
        self.source_options = {
            "open_timeout_s": open_timeout_s,
            "read_timeout_s": read_timeout_s,
            "freeze_after_s": freeze_after_s,
        }
        key = api_key or os.environ.get(self.config.api.key_env)
        if not key:
            raise ConfigError(
                str(config_path),
                [f"api.key_env: environment variable {self.config.api.key_env} is not set"],
            )
        self.state_dir = state_dir
        self.evidence = EvidenceWriter(state_dir / "evidence")
        self.sites = SiteStore(state_dir / "sites")
        self.outbox = Outbox(state_dir / "outbox.sqlite3", evidence_dir=self.evidence.directory)
        self.metrics = WorkerMetrics(
            lambda: [(c.source, c.runtime.gate) for c in self.cameras.values()]
        )
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        api_url = self.config.api.url
        self.deliverer = Deliverer(
            self.outbox,
            lambda: IntakeClient(api_url, key),
            evidence_dir=self.evidence.directory,
            on_delivered=self.metrics.posted.inc,
        )
        # -- the review feedback loop: suppressions, zone hours, camera health ------------
        api = self.config.api
        self.suppressions = SuppressionCache(
            state_dir / "suppressions.json",
            IntakeClient(api_url, key, timeout=10).get_suppressions,
            api.suppressions_poll_s,
        )
        self.feedback = Feedback(self.suppressions, self.metrics.registry, state_dir / "held.json")
        self.health_reporter = HealthReporter(
            IntakeClient(api_url, key, timeout=10).post_camera_health, api.health_every_s
        )
        # ---------------------------------------------------------------------------------
        # Where the cameras come from: the config file, or the API's fleet assignment.
        self.fleet = (
            FleetCameras(IntakeClient(api_url, key, timeout=10), fleet_id, self.sites)
            if fleet_id
            else None
        )
        self.health_port = health_port
        self.health_host = health_host
        self._loop_at = time.monotonic()
        self.models = ModelSet(self.config, self._live(self.config))
        self.shadow = self._make_shadow(self.config)
        self.cameras: dict[str, LiveCamera] = {}
        # Batches in inference, oldest first: one per parallel run, so a lone camera's next
        # sample is inferred while the last one goes through its rules (like `score`).
        self._inflight: deque[_Batch] = deque()
        self._inference = ThreadPoolExecutor(self.models.parallel_runs, "batch")
        self._turn = 0
        self._frame_s: float | None = None  # inference seconds per frame, smoothed
        self.shedder = LoadShedder(self._sample_totals)
        self._unsaved: list[tuple[LiveCamera, IncidentEvent]] = []
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._config_mtime = config_path.stat().st_mtime

    # -- lifecycle -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if self.metrics_port is not None:
            self.metrics.serve(self.metrics_port, self.metrics_host)
        health = None
        if self.health_port is not None:
            health = serve_health(self.health_port, self.health_host, self.healthy)
        self.deliverer.start()
        self.suppressions.refresh()  # before the first frame; the saved copy if that fails
        self.suppressions.start()
        self.health_reporter.start()
        if self.fleet is not None:
            self.fleet.start()
        self._apply_cameras(self._wanted(self.config))
        log.info(
            "worker %s: %d cameras, model %s, state in %s",
            self.fleet.worker_id if self.fleet else f"{self.shard.index}/{self.shard.count}",
            len(self.cameras),
            ", ".join(self.models.loaded),
            self.state_dir,
        )
        next_reload_check = time.monotonic() + RELOAD_POLL_S
        try:
            while not self._stop.is_set():
                self._loop_at = time.monotonic()
                if self.fleet is not None and self.fleet.changed.is_set():
                    self._apply_cameras(self._wanted(self.config))
                if time.monotonic() >= next_reload_check:
                    next_reload_check = time.monotonic() + RELOAD_POLL_S
                    self._check_reload()
                    self._retry_unsaved()
                    self._save_sites()
                    self._update_outbox_metrics()
                if not self.step():
                    self._stop.wait(POLL_S)
        finally:
            self._shutdown()
            if health is not None:
                health.shutdown()

    def _shutdown(self) -> None:
        """Stops cameras, hands every open incident's latest state to the outbox, drains it;
        a fleet worker hands its cameras' sites over and says it runs nothing, so the others
        take them over at once rather than after the TTL."""
        while self._inflight:
            self._settle(self._inflight.popleft())
        self._inference.shutdown()
        for cam in self.cameras.values():
            cam.source.stop(wait=False)  # all at once: each may take a read timeout to end
            if cam.record is not None:
                cam.record.stop(wait=False)
        for cam in list(self.cameras.values()):
            self._retire(cam)
        if self.fleet is not None:
            self.fleet.running(set(), released=set(self.cameras))
            self.fleet.stop()
        self.cameras.clear()
        self.sites.close()
        self.deliverer.stop(drain_s=5.0)
        self.suppressions.stop()
        self.health_reporter.stop()
        pending = self.outbox_pending
        self.outbox.close()
        log.info("worker stopped; %d items wait in the outbox", pending)

    # -- the loop ------------------------------------------------------------------------

    def step(self) -> bool:
        """Moves the pipeline on: submits a batch of the newest unseen samples while fewer
        than one per parallel run are in flight, and settles the oldest batch once it is done.
        It never blocks on a batch: waiting for the oldest while a run is free would leave a
        sample that arrives meanwhile (a lone camera's next frame, another camera's keyframe)
        outside inference until the oldest is done. False when nothing happened."""
        submitted = len(self._inflight) < self.models.parallel_runs and self._submit()
        if self._inflight and self._inflight[0].future.done():
            self._settle(self._inflight.popleft())
            return True
        if not submitted and self._inflight:
            wait([self._inflight[0].future], timeout=POLL_S)
            return True
        return submitted

    def _submit(self) -> bool:
        """Takes the newest unseen sample of up to `_max_batch()` cameras, starting after the
        last camera taken, so under overload every camera gets its turn."""
        cams = list(self.cameras.values())
        start = self._turn % len(cams) if cams else 0
        limit = self._max_batch()
        samples: list[tuple[LiveCamera, Frame]] = []
        for offset in range(len(cams)):
            cam = cams[(start + offset) % len(cams)]
            if (frame := cam.source.latest(timeout=0)) is not None:
                samples.append((cam, frame))
                if len(samples) == limit:
                    self._turn = start + offset + 1
                    break
        if not samples:
            return False
        gated = self.models.gate([(cam.config, f, cam.runtime.gate) for cam, f in samples])
        future = self._inference.submit(gated.infer, self._detect)
        self._inflight.append(_Batch(samples, gated, future))
        return True

    def _max_batch(self) -> int:
        """The most samples one batch may hold: what inference gets through in BATCH_BOUND_S,
        so no sample waits behind a batch longer than that."""
        if self._frame_s is None:
            return MAX_BATCH
        return max(1, min(MAX_BATCH, int(BATCH_BOUND_S / self._frame_s)))

    def _settle(self, batch: _Batch) -> None:
        detections = batch.gated.settle(batch.future.result())
        now = time.time()
        for (cam, frame), dets in zip(batch.samples, detections, strict=True):
            if self.cameras.get(cam.config.id) is not cam:
                continue  # stopped or restarted while its sample was in flight
            if not cam.runtime.started:
                cam.runtime.start_live(frame, now)
                self._resume(cam)
            events = cam.runtime.process(frame, dets)
            cam.unsaved = True
            if cam.record is not None:
                assert cam.runtime.pipeline is not None
                cam.record.want(cam.runtime.pipeline.busy)
                for event in events:
                    cam.record.upgrade(event, frame)
            # Suppressed sites and zones outside their hours are held back, not reported.
            events = self.feedback.filter(cam.config, events, cam.runtime.open_incidents)
            self.health_reporter.saw(cam.config.id, frame.image, frame.wall_time or now)
            for event in events:
                self._save(cam, event)
            if events:  # the sites' state goes to disk with the outbox entry it explains
                self._save_camera(cam)
                if self.fleet is not None:  # and to a successor, should this worker die
                    self.fleet.hand_over_soon(cam.config.id)
            for scene in cam.runtime.take_scene_events():
                if scene.kind == "moved":
                    detail = f"the camera moved at {scene.pts:.0f} s: check its zones"
                    report(HealthEvent(cam.config.id, "scene_changed", detail), self._on_health)
            self._observe_open(cam)
            self.metrics.processed.labels(cam.config.id).inc()
            if frame.wall_time is not None:
                lag = now - frame.wall_time
                self.metrics.lag.labels(cam.config.id).set(lag)
                if (stretch := self.shedder.observe(lag, time.monotonic())) is not None:
                    self._stretch(stretch)
        if self.shadow is not None:  # the candidate model judges the same samples, unposted
            self.shadow.observe([(c.config, f, c.runtime.epoch) for c, f in batch.samples])

    def _sample_totals(self) -> tuple[int, int]:
        stats = [cam.source.stats for cam in self.cameras.values()]
        return sum(s.produced for s in stats), sum(s.dropped for s in stats)

    def _stretch(self, stretch: float) -> None:
        """Every camera's interval times `stretch`: fair, each keeps its share of samples."""
        for cam in self.cameras.values():
            cam.source.plan.stretch = stretch
        self.metrics.stretch.set(stretch)

    def _make_shadow(self, config: Config) -> Shadow | None:
        """The candidate model on trial, if the config names one; one that does not load is
        logged and left out (the live model carries on)."""
        if config.shadow is None:
            return None
        try:
            shadow = Shadow(config, self.metrics.registry)
        except (ModelError, OSError, ValueError) as exc:
            log.error("shadow model %r does not load (%s): no shadow", config.shadow.model, exc)
            return None
        log.info("shadow: %s runs beside the live model, never posted", shadow.model)
        return shadow

    def _detect(self, engine: Engine, images: list[np.ndarray]) -> list[Detections]:
        """An engine's detect, timed; the motion gate may have left nothing to infer."""
        if not images:
            return []
        started = time.perf_counter()
        found = engine.detect(images)
        took = time.perf_counter() - started
        self.metrics.inference.observe(took)
        self.metrics.batch.observe(len(images))
        self.metrics.inferred.labels(engine.manifest.name).inc(len(images))
        per_frame = took / len(images)
        self._frame_s = (
            per_frame if self._frame_s is None else 0.8 * self._frame_s + 0.2 * per_frame
        )
        return found

    def _save(self, cam: LiveCamera, event: IncidentEvent) -> None:
        """Saves an incident event, or keeps it to retry if the disk refuses (full disk).
        Events wait behind older unsaved ones, so a clearing never overtakes its report."""
        if self._unsaved:
            self._unsaved.append((cam, event))
            return
        try:
            self._on_incident(cam, event)
        except (OSError, OutboxError) as exc:
            log.error(
                "camera %s: cannot save %s %s (%s); kept in memory, retrying",
                cam.config.id,
                event.kind,
                event.incident.id,
                exc,
            )
            self._unsaved.append((cam, event))

    def _retry_unsaved(self) -> None:
        unsaved, self._unsaved = self._unsaved, []
        for i, (cam, event) in enumerate(unsaved):
            self._save(cam, event)
            if self._unsaved:  # the disk still refuses: keep the rest, in order
                self._unsaved += unsaved[i + 1 :]
                return

    def _on_incident(self, cam: LiveCamera, event: IncidentEvent) -> None:
        incident = event.incident
        runtime = cam.runtime
        assert runtime.epoch is not None
        refs = self.evidence.write(incident, runtime.epoch)
        if event.kind == "confirmed":
            case = runtime.report(incident, refs)
            cam.reports[incident.id] = case
            cam.observed_at[incident.id] = time.monotonic()
            self.outbox.enqueue_report(case)
            log.info(
                "camera %s: %s confirmed in zone %s (%s %.2f): %s",
                cam.config.id,
                incident.type,
                incident.zone_id,
                incident.class_name,
                incident.confidence,
                incident.id,
            )
        else:
            reported = cam.reports.get(incident.id)
            sent = {r.sha256 for r in reported.evidence} if reported else set()
            self._enqueue_observation(
                cam, incident, cleared=True, evidence=[r for r in refs if r.sha256 not in sent]
            )
            cam.reports.pop(incident.id, None)
            cam.observed_at.pop(incident.id, None)
            self.evidence.forget(incident.id)
            log.info("camera %s: %s cleared: %s", cam.config.id, incident.type, incident.id)
        self.metrics.incidents.labels(cam.config.id, incident.type, event.kind).inc()
        self.deliverer.wake()

    def _observe_open(self, cam: LiveCamera) -> None:
        """Sends each open incident's last_seen now and then, so the API sees it is still there."""
        now = time.monotonic()
        for incident in cam.runtime.open_incidents():
            if now - cam.observed_at.get(incident.id, now) >= OBSERVE_EVERY_S:
                self._observe(cam, incident)
                cam.observed_at[incident.id] = now

    def _observe(self, cam: LiveCamera, incident: Incident) -> None:
        """Queues an open incident's latest state; if the disk refuses, the next one will
        carry it (each observation supersedes the last), so it is logged, not kept."""
        try:
            self._enqueue_observation(cam, incident)
        except (OSError, OutboxError) as exc:
            log.error(
                "camera %s: cannot queue an update of %s (%s)", cam.config.id, incident.id, exc
            )

    def _enqueue_observation(
        self, cam: LiveCamera, incident: Incident, cleared: bool = False, evidence=()
    ) -> None:
        if self.feedback.holds(incident.id):
            return  # held back (suppressed or off hours): never reported, nothing to update
        case = cam.runtime.report(incident, evidence)
        observation = Observation(
            last_seen=case.last_seen,
            cleared_at=case.cleared_at if cleared else None,
            evidence=case.evidence,
        )
        self.outbox.enqueue_observation(incident.id, observation)

    # -- cameras and reload --------------------------------------------------------------

    def _make_source(self, camera: CameraConfig) -> RtspSource:
        sampling = sampling_for(camera)
        return RtspSource(
            camera.id, camera.source, sampling, on_health=self._on_health, **self.source_options
        )

    def _make_record(self, camera: CameraConfig) -> RecordStream | None:
        url = camera.record_source
        if url is None:
            return None
        return RecordStream(
            lambda: RtspSource(
                f"{camera.id}/record",
                url,
                Sampling(keyframes=True),
                **self.source_options,  # its health is logged, not the camera's to report
            )
        )

    def _on_health(self, event: HealthEvent) -> None:
        self.metrics.health.labels(event.camera_id, event.kind).inc()
        self.health_reporter.event(event)

    def _wanted(self, config: Config) -> list[CameraConfig]:
        """The cameras to run: the fleet's assignment, else the config's."""
        return self.fleet.take() if self.fleet is not None else config.cameras

    def _apply_cameras(self, cameras: list[CameraConfig], rebuild: bool = False) -> None:
        before = set(self.cameras)
        self._apply(cameras, rebuild)
        if self.fleet is not None:
            self.fleet.running(set(self.cameras), released=before - set(self.cameras))

    def healthy(self) -> tuple[bool, dict[str, object]]:
        """For /healthz: healthy while the inference loop turns (a stuck one wants a
        restart). A fleet worker cut off from the API is reported (`fleet_connected`) but
        not unhealthy: it has stopped its cameras itself, and a restart would not help."""
        loop_age = time.monotonic() - self._loop_at
        details: dict[str, object] = {
            "cameras": len(self.cameras),
            "loop_age_s": round(loop_age, 1),
        }
        if self.fleet is not None:
            details["fleet_connected"] = self.fleet.connected
        return loop_age < LOOP_STUCK_S, details

    def _apply(self, cameras: list[CameraConfig], rebuild: bool = False) -> None:
        """Starts, changes and stops cameras so the running set matches `cameras`, touching
        only what changed: a camera whose stream settings (source, sampling) changed is
        restarted and resumes its saved sites; one whose zones, location or calibration
        changed, or every camera when `rebuild` (rules, detector, model, codes changed), gets
        a new runtime that continues its sites in place, without touching its stream. Stopped
        cameras end in the background, so nobody else waits for their read timeout."""
        wanted = {}
        for camera in cameras:
            if not self.shard.owns(camera.id):
                continue
            if not camera.is_live:
                log.warning(
                    "camera %s: %s is not a live source; use `score`", camera.id, camera.source
                )
                continue
            wanted[camera.id] = camera
        self._load_models(wanted)
        for cam_id in list(self.cameras):
            cam = self.cameras[cam_id]
            camera = wanted.get(cam_id)
            if camera is None or _stream_of(camera) != _stream_of(cam.config):
                # A fleet camera that moves to another worker keeps its sites, to hand over.
                gone = camera is None and self.fleet is None
                self._retire(self.cameras.pop(cam_id), removed=gone, wait=False)
                log.info("camera %s: stopped (%s)", cam_id, "changed" if camera else "removed")
                if self.shadow is not None:
                    self.shadow.forget(cam_id)
                if camera is None:
                    self.metrics.forget_camera(cam_id)
                    self.feedback.forget_camera(cam_id)
                    self.health_reporter.forget(cam_id)
            elif rebuild or camera != cam.config:
                self._rebuild(cam, camera)
        for cam_id, camera in wanted.items():
            if cam_id not in self.cameras:
                source = self._make_source(camera)
                source.plan.stretch = self.shedder.stretch
                labels = self.models.of(camera).labels
                runtime = CameraRuntime(camera, self.config, labels, source.plan)
                cam = LiveCamera(camera, source, runtime, record=self._make_record(camera))
                cam.source.start()
                self.cameras[cam_id] = cam
        self.metrics.cameras.set(len(self.cameras))

    def _load_models(self, wanted: dict[str, CameraConfig]) -> None:
        """Loads the models of cameras that arrive with a model not loaded yet (a fleet
        camera's own); a camera whose models do not all load is left out, with an error."""
        needed = {n for c in wanted.values() for n in self.config.models_of(c)}
        if needed <= set(self.models.loaded):
            return
        running = [c.config for c in self.cameras.values()]
        try:
            self.models = ModelSet(self.config, [*running, *wanted.values()], self.models)
        except (ModelError, OSError, ValueError) as exc:
            for cam_id, camera in list(wanted.items()):
                if not set(self.config.models_of(camera)) <= set(self.models.loaded):
                    log.error("camera %s: its model does not load (%s): not started", cam_id, exc)
                    del wanted[cam_id]

    def _rebuild(self, cam: LiveCamera, camera: CameraConfig) -> None:
        """A new runtime for a running camera, continuing the sites of its zones that remain
        (their dwell timers included); the stream goes on untouched."""
        old = cam.runtime
        labels = self.models.of(camera).labels
        runtime = CameraRuntime(camera, self.config, labels, cam.source.plan)
        if old.started:
            assert old.epoch is not None
            runtime.start(old.epoch)
            kept = runtime.restore(old.snapshot())
            log.info("camera %s: settings applied, %d open sites continue", camera.id, kept)
        gone = {i.id for i in old.open_incidents()} - {i.id for i in runtime.open_incidents()}
        for incident_id in gone:  # a zone or type no longer checked: its case stays as sent
            cam.reports.pop(incident_id, None)
            cam.observed_at.pop(incident_id, None)
            self.evidence.forget(incident_id)
        cam.config, cam.runtime = camera, runtime

    def _retire(self, cam: LiveCamera, removed: bool = False, wait: bool = True) -> None:
        """Stops a camera; its open incidents' latest state goes to the outbox first. Its
        sites are saved for the next start, or forgotten if the camera was removed."""
        cam.source.stop(wait=wait)
        if cam.record is not None:
            cam.record.stop(wait=wait)
        if removed:
            self.sites.forget(cam.config.id)
        else:
            self._save_camera(cam)
        for incident in cam.runtime.open_incidents():
            self._observe(cam, incident)
            self.evidence.forget(incident.id)

    # -- open sites across restarts ------------------------------------------------------

    def _resume(self, cam: LiveCamera) -> None:
        """Continues the sites a previous run of this worker (or, in a fleet, the camera's
        previous worker) left open for the camera: the same incidents under the same ids,
        reported once. Handed-over state is first reconciled with what the API holds."""
        state = self.sites.load(cam.config.id)
        if state is None:
            return
        reported = self.fleet.reported(cam.config.id) if self.fleet is not None else None
        if reported is not None:
            to_post, to_clear = reconcile(cam.config.id, state, reported)
            self._deliver_for_predecessor(cam, to_post, to_clear)
        restored = cam.runtime.restore(state.pipeline)
        cam.reports.update(state.reports)
        now = time.monotonic()
        for incident_id, refs in state.evidence.items():
            self.evidence.refs[incident_id] = list(refs)
            cam.observed_at[incident_id] = now
        log.info(
            "camera %s: resumed %d open sites (%d reported incidents) saved %.0f s ago",
            cam.config.id,
            restored,
            len(state.reports),
            time.time() - state.saved_at,
        )

    def _deliver_for_predecessor(
        self, cam: LiveCamera, to_post: list[CaseReport], to_clear: list[CaseReport]
    ) -> None:
        """Queues what the camera's previous worker queued and never delivered: reports of
        incidents it confirmed (without their evidence, which stayed on its disk) and the
        clearings of incidents it cleared."""
        try:
            for report in to_post:
                self.outbox.enqueue_report(report.model_copy(update={"evidence": []}))
            for report in to_clear:
                observation = Observation(last_seen=report.last_seen, cleared_at=report.cleared_at)
                self.outbox.enqueue_observation(report.id, observation)
        except (OSError, OutboxError) as exc:
            log.error("camera %s: cannot queue its predecessor's reports (%s)", cam.config.id, exc)
            return
        if to_post or to_clear:
            log.info(
                "camera %s: %d reports and %d clearings its previous worker did not deliver",
                cam.config.id,
                len(to_post),
                len(to_clear),
            )
            self.deliverer.wake()

    def _state(self, cam: LiveCamera) -> CameraState:
        cam.unsaved = False
        return CameraState(
            cam.runtime.snapshot(),
            dict(cam.reports),
            {i: list(self.evidence.refs.get(i, [])) for i in cam.reports},
        )

    def _save_camera(self, cam: LiveCamera) -> None:
        """Saves the camera's state now: with an incident event, or as it stops."""
        if not cam.runtime.started:
            return
        try:
            self.sites.save(cam.config.id, self._state(cam))
        except OSError as exc:
            log.error("camera %s: cannot save its open sites (%s)", cam.config.id, exc)

    def _save_sites(self) -> None:
        """Every camera whose state changed, written behind the loop: a camera sampled every
        6 s changes once in three of these, and the loop never waits for the disk."""
        for cam in self.cameras.values():
            if cam.unsaved and cam.runtime.started:
                self.sites.save_soon(cam.config.id, self._state(cam))

    def _check_reload(self) -> None:
        try:
            mtime = self.config_path.stat().st_mtime
        except OSError:
            mtime = self._config_mtime
        if mtime != self._config_mtime:
            self._config_mtime = mtime
            self._reload.set()
        if self._reload.is_set():
            self._reload.clear()
            self.reload()

    def reload(self) -> None:
        """Re-reads the config and applies what changed; a bad file (or a model that does not
        load) is logged and the running cameras carry on as they were."""
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        if not config.cameras and self.fleet is None:
            log.error("reload refused, keeping the running configuration: no cameras")
            return
        if config.api != self.config.api:
            log.warning("reload: api changed; that takes a restart to apply")
            config = config.model_copy(update={"api": self.config.api})
        live = self._live(config)
        needed = {config.model} | {n for c in live for n in config.models_of(c)}
        settings_changed = any(
            getattr(config.detector, k) != getattr(self.config.detector, k) for k in ENGINE_SETTINGS
        )
        models_changed = settings_changed or needed != set(self.models.loaded)
        rebuild = (
            models_changed
            or any(config.models_of(c) != self.config.models_of(c) for c in live)
            or any(
                getattr(config, k) != getattr(self.config, k)
                for k in ("rules", "detector", "event_codes")
            )
        )
        if rebuild:
            try:
                models = ModelSet(config, live, self.models)
            except (ModelError, OSError, ValueError) as exc:
                log.error("reload refused: a model does not load (%s)", exc)
                return
            self.models = models  # the cameras' streams go on; inference takes the new one
            if models_changed:
                log.info("reload: inference now runs %s", ", ".join(models.loaded))
        if config.shadow != self.config.shadow or (rebuild and config.shadow is not None):
            if self.shadow is not None:
                self.shadow.close(self.metrics.registry)
            self.shadow = self._make_shadow(config)
        self.config = config
        self._apply_cameras(self.fleet.current() if self.fleet else config.cameras, rebuild)
        log.info("reloaded %s: %d cameras", self.config_path, len(self.cameras))

    def _live(self, config: Config) -> list[CameraConfig]:
        """The config's live cameras this worker's shard owns."""
        return [c for c in config.cameras if c.is_live and self.shard.owns(c.id)]

    # -- metrics -------------------------------------------------------------------------

    @property
    def outbox_pending(self) -> int:
        return self.outbox.counts()["outbox"]

    def _update_outbox_metrics(self) -> None:
        counts = self.outbox.counts()
        self.metrics.outbox_depth.set(counts["outbox"])
        self.metrics.dead_letters.set(counts["dead_letter"])
        self.metrics.dead_letters_dropped.set(self.outbox.dropped)
