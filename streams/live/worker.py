"""The live worker: many RTSP cameras in one process, one batched inference loop.

Each camera decodes on its own thread into a latest-frame mailbox (streams/sources/rtsp.py);
the loop takes whatever samples are new across cameras, runs them through the engine as one
batch, and hands each sample's detections to its camera (streams/live/live_camera.py), which
runs them through its rules (the same tracker, zones and rules as `score`) and publishes what
happened to the sinks (streams/live/sinks.py): the durable outbox (api/client/outbox.py),
which a background thread drains into the intake API, metrics, health, saved sites, the
shadow model. The
worker itself schedules samples, batches inference, starts and stops cameras, and reloads.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector.engine import Engine
from detector.types import Detections, Frame
from models.errors import ModelError
from streams.camera.evidence import EvidenceWriter, deidentifier
from streams.camera.model_set import ENGINE_SETTINGS, ModelBatch, ModelSet
from streams.camera.record import RecordStream
from streams.camera.runtime import CameraRuntime, sampling_for
from streams.config import CameraConfig, Config, ConfigError, load_config
from streams.config import api_key as find_api_key
from streams.live.health_http import serve_health
from streams.live.live_camera import Backlog, CameraContext, LiveCamera
from streams.live.live_events import BatchSettled
from streams.live.metrics import WorkerMetrics
from streams.live.shedding import LoadShedder
from streams.live.sinks import Sinks
from streams.sources.chunked_rtsp import ChunkedRtspSource
from streams.sources.ffmpeg_rtsp import FfmpegMissing, FfmpegRtspSource, check_ffmpeg
from streams.sources.hwdecode import hardware_decoding
from streams.sources.rtsp import RtspSource
from streams.sources.sampling import Sampling

log = logging.getLogger(__name__)

RECEIVERS: dict[str, type[RtspSource]] = {
    "pyav": RtspSource,
    "ffmpeg": FfmpegRtspSource,
    "chunked": ChunkedRtspSource,
}  # by `worker.receive`, for keyframe-sampled cameras

BATCH_BOUND_S = 0.5  # the longest a batch's inference may take (it sizes the batches)
MAX_BATCH = 64
RELOAD_POLL_S = 2.0
LOOP_STUCK_S = 60.0  # an inference loop that has not turned for this long is stuck
# The loop sleeps until a camera has a new sample or a batch is done (both set its wake-up
# event); this bounds the sleep for what it does on a clock (reload checks, saves, a fleet's
# new assignment, a camera that dribbles bytes reported dead from the loop's side).
IDLE_WAKE_S = 0.25


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


def runnable(config_path: Path, fleet: bool, api_key: str | None = None) -> tuple[Config, str]:
    """The config, if `streetwatch run` can run it, and the API key; else ConfigError."""
    config = load_config(config_path)
    if config.api is None:
        raise ConfigError(str(config_path), ["api: required by `streetwatch run`"])
    if not config.cameras and not fleet:
        raise ConfigError(str(config_path), ["cameras: required unless `run --fleet`"])
    key_env, key = find_api_key(config)
    key = api_key or key
    if not key:
        raise ConfigError(
            str(config_path), [f"api.key_env: environment variable {key_env} is not set"]
        )
    if config.worker.receive == "ffmpeg":
        try:
            check_ffmpeg()
        except FfmpegMissing as exc:
            raise ConfigError(str(config_path), [str(exc)]) from exc
    return config, key


def _stream_of(camera: CameraConfig) -> tuple[object, ...]:
    """What a camera's streams depend on: changing it restarts them."""
    return camera.source, camera.sample, camera.record_source


@dataclass(slots=True)
class _Batch:
    """Samples in inference: settled in the order they were submitted."""

    samples: list[tuple[LiveCamera, Frame]]
    gated: ModelBatch
    future: Future[list[list[Detections]]]


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
        inference_cores: int | None = None,
    ) -> None:
        """fleet_id: take the cameras from the intake API as this fleet worker (the config's
        own `cameras` are then ignored) instead of from the config file. inference_cores: the
        cores inference spreads over (default all this process may run on; a supervisor
        gives each of its children a share, streams/live/supervisor.py)."""
        self.config_path = config_path
        self.config, key = runnable(config_path, fleet=fleet_id is not None, api_key=api_key)
        self.shard = shard
        hwaccel, decoding = hardware_decoding(self.config.worker.decode)
        fell_back = hwaccel is None and self.config.worker.decode != "cpu"
        log.log(logging.WARNING if fell_back else logging.INFO, decoding)
        self.receive = self.config.worker.receive  # read at start, as all of `worker`
        if self.receive == "ffmpeg":
            log.info("keyframe-sampled cameras received by ffmpeg (%s)", check_ffmpeg())
        elif self.receive == "chunked":
            log.info("keyframe-sampled cameras received by StreetWatch's own RTSP client")
        self.source_options = {
            "open_timeout_s": open_timeout_s,
            "read_timeout_s": read_timeout_s,
            "freeze_after_s": freeze_after_s,
            "hwaccel": hwaccel,
        }
        self.state_dir = state_dir
        self.metrics = WorkerMetrics(
            lambda: [(c.source, c.runtime.gate) for c in self.cameras.values()]
        )
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        evidence = EvidenceWriter(state_dir / "evidence", deidentify=deidentifier())
        self.sinks = Sinks.wire(
            self.config, state_dir, key, self.metrics, evidence.directory, fleet_id=fleet_id
        )
        # Where the cameras come from: the config file, or the API's fleet assignment.
        self.fleet = self.sinks.fleet
        self.context = CameraContext(
            self.sinks.bus,
            self.sinks.feedback,
            evidence,
            self.sinks.sites,
            Backlog(),
            self.sinks.outbox,
            self.fleet,
        )
        self.health_port = health_port
        self.health_host = health_host
        self._loop_at = time.monotonic()
        # OpenCV's own pool on one thread: a sample's image work (the letterbox, the static
        # stage's 320-wide analysis, evidence JPEGs) is small enough that handing it to a pool
        # costs more CPU than it saves (the static stage: 1.3x the CPU per sample on two
        # threads), and the cameras already keep every core busy.
        cv2.setNumThreads(1)
        self.models = ModelSet(self.config, self._live(self.config), cores=inference_cores)
        self.sinks.shadow.replace(self.config)
        self.cameras: dict[str, LiveCamera] = {}
        # Batches in inference, oldest first: one per parallel run, so a lone camera's next
        # sample is inferred while the last one goes through its rules (like `score`).
        self._inflight: deque[_Batch] = deque()
        self._inference = ThreadPoolExecutor(self.models.parallel_runs, "batch")
        self._turn = 0
        self._frame_s: float | None = None  # inference seconds per frame, smoothed
        self.shedder = LoadShedder(self._sample_totals)
        self._stop = threading.Event()
        # Set by every new sample and every finished batch. Before, an idle loop scanned every
        # camera's mailbox on a 10 ms timer: 100 wake-ups and scans a second whatever came.
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._config_mtime = config_path.stat().st_mtime

    # -- lifecycle -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # Only `_stop`, never the wake-up event: a handler runs on the main thread between
        # two bytecodes, possibly while the loop holds the wake-up event's lock (a non-reentrant
        # lock: setting it there would hang). The sleeping loop sees `_stop` within IDLE_WAKE_S.
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        if self.metrics_port is not None:
            self.metrics.serve(self.metrics_port, self.metrics_host)
        health = None
        if self.health_port is not None:
            health = serve_health(self.health_port, self.health_host, self.healthy)
        self.sinks.start()
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
                    self.context.backlog.retry()
                    for cam in self.cameras.values():  # written behind the loop
                        cam.save("changed")
                    self._update_outbox_metrics()
                if not self.step():
                    self._sleep()
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
            cam.stop_streams(wait=False)  # all at once: each may take a read timeout to end
        for cam in list(self.cameras.values()):
            cam.retire()
        if self.fleet is not None:
            self.fleet.running(set(), released=set(self.cameras))
            self.fleet.stop()
        self.cameras.clear()
        pending = self.sinks.stop()
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
            self._sleep()  # until the oldest batch is done or a sample comes
            return True
        return submitted

    def _sleep(self) -> None:
        """Waits for the wake-up event, then clears it before the next scan: a sample that
        comes during the scan sets it again, so none waits for the timeout."""
        self._wake.wait(IDLE_WAKE_S)
        self._wake.clear()

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
        future.add_done_callback(lambda _: self._wake.set())
        self._inflight.append(_Batch(samples, gated, future))
        return True

    def _max_batch(self) -> int:
        """The most samples one batch may hold: what inference gets through in BATCH_BOUND_S,
        so no sample waits behind a batch longer than that."""
        if self._frame_s is None:
            return MAX_BATCH
        return max(1, min(MAX_BATCH, int(BATCH_BOUND_S / self._frame_s)))

    def _settle(self, batch: _Batch) -> None:
        """Hands each sample's detections to its camera, then sheds load if the worker fell
        behind."""
        detections = batch.gated.settle(batch.future.result())
        now = time.time()
        for (cam, frame), dets in zip(batch.samples, detections, strict=True):
            if self.cameras.get(cam.config.id) is not cam:
                continue  # stopped or restarted while its sample was in flight
            cam.settle(frame, dets, now)
            if frame.wall_time is not None:
                lag = now - frame.wall_time
                if (stretch := self.shedder.observe(lag, time.monotonic())) is not None:
                    self._stretch(stretch)
        self.sinks.bus.publish(
            BatchSettled([(c.config, f, c.runtime.epoch) for c, f in batch.samples])
        )

    def _sample_totals(self) -> tuple[int, int]:
        stats = [cam.source.stats for cam in self.cameras.values()]
        return sum(s.produced for s in stats), sum(s.dropped for s in stats)

    def _stretch(self, stretch: float) -> None:
        """Every camera's interval times `stretch`: fair, each keeps its share of samples."""
        for cam in self.cameras.values():
            cam.source.plan.stretch = stretch
        self.metrics.stretch.set(stretch)

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

    # -- cameras and reload --------------------------------------------------------------

    def _receiver(self, sampling: Sampling) -> type[RtspSource]:
        """The config's receive path for a camera so sampled (ffmpeg and chunked pass
        keyframes only)."""
        if not sampling.keyframes:
            return RtspSource
        return RECEIVERS[self.receive]

    def _make_source(self, camera: CameraConfig) -> RtspSource:
        sampling = sampling_for(camera)
        return self._receiver(sampling)(
            camera.id,
            camera.source,
            sampling,
            on_health=self.sinks.bus.publish,
            on_sample=self._wake.set,
            **self.source_options,
        )

    def _make_record(self, camera: CameraConfig) -> RecordStream | None:
        url = camera.record_source
        if url is None:
            return None
        sampling = Sampling(keyframes=True)
        return RecordStream(
            lambda: self._receiver(sampling)(
                f"{camera.id}/record",
                url,
                sampling,
                **self.source_options,  # its health is logged, not the camera's to report
            )
        )

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
                self.cameras.pop(cam_id).retire(removed=gone, left=camera is None, wait=False)
                log.info("camera %s: stopped (%s)", cam_id, "changed" if camera else "removed")
            elif rebuild or camera != cam.config:
                self._rebuild(cam, camera)
        for cam_id, camera in wanted.items():
            if cam_id not in self.cameras:
                source = self._make_source(camera)
                source.plan.stretch = self.shedder.stretch
                labels = self.models.of(camera).labels
                runtime = CameraRuntime(camera, self.config, labels, source.plan)
                cam = LiveCamera(camera, source, runtime, self.context, self._make_record(camera))
                cam.start()
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
        """A new runtime for a running camera, continuing its sites; the stream goes on."""
        labels = self.models.of(camera).labels
        cam.rebuild(camera, CameraRuntime(camera, self.config, labels, cam.source.plan))

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
        for kept in ("api", "worker"):
            if getattr(config, kept) != getattr(self.config, kept):
                log.warning("reload: %s changed; that takes a restart to apply", kept)
                config = config.model_copy(update={kept: getattr(self.config, kept)})
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
            self.sinks.shadow.replace(config)
        self.config = config
        self._apply_cameras(self.fleet.current() if self.fleet else config.cameras, rebuild)
        log.info("reloaded %s: %d cameras", self.config_path, len(self.cameras))

    def _live(self, config: Config) -> list[CameraConfig]:
        """The config's live cameras this worker's shard owns."""
        return [c for c in config.cameras if c.is_live and self.shard.owns(c.id)]

    # -- metrics -------------------------------------------------------------------------

    def _update_outbox_metrics(self) -> None:
        outbox = self.sinks.outbox
        counts = outbox.counts()
        self.metrics.outbox_depth.set(counts["outbox"])
        self.metrics.dead_letters.set(counts["dead_letter"])
        self.metrics.dead_letters_dropped.set(outbox.dropped)
