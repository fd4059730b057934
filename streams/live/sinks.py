"""The live worker's sinks: what becomes of its cameras' events (streams/live/live_events.py), and
the wiring of them all in one place (`Sinks.wire`).

Each sink keeps only its own bookkeeping; a camera's state is the camera's
(streams/live/live_camera.py). Who hears what, in order:

| event | sinks |
|---|---|
| `IncidentConfirmed` | outbox (durable: the report), log, metrics, deliverer woken |
| `IncidentUpdated` | outbox (durable: the observation) |
| `IncidentCleared` | outbox (durable: the last observation), log, metrics, deliverer woken |
| `InheritedReports` | outbox (durable: what a predecessor never delivered), log, deliverer woken |
| `SampleSettled` | health (the latest frame), metrics (processed, lag) |
| `HealthEvent` | metrics, health (the state the console shows) |
| `SitesChanged` | site store (saved now or soon); a fleet worker's hand-over, after an incident |
| `SitesDropped` | site store |
| `BatchSettled` | shadow (the candidate model judges the same samples) |
| `CameraStopped` | shadow; and once the camera `left`: metrics, feedback, health |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from api.client import IntakeClient
from api.client.outbox import OUTBOX_FILE, Deliverer, Outbox
from models.errors import ModelError
from streams.camera.site_store import SiteStore
from streams.camera.suppressions import Feedback, SuppressionCache
from streams.config import Config
from streams.live.fleet import FleetCameras
from streams.live.health_report import HealthReporter
from streams.live.live_events import (
    BatchSettled,
    Bus,
    CameraStopped,
    IncidentCleared,
    IncidentConfirmed,
    IncidentUpdated,
    InheritedReports,
    SampleSettled,
    SitesChanged,
    SitesDropped,
)
from streams.live.metrics import WorkerMetrics
from streams.live.shadow import Shadow
from streams.sources.health import HealthEvent

log = logging.getLogger(__name__)


class OutboxSink:
    """Cases and observations into the durable outbox (subscribed durable: if the disk
    refuses, the camera keeps the event and tries again), and the deliverer, which drains
    it into the API on its own thread, woken once every other sink heard the event."""

    def __init__(self, outbox: Outbox, deliverer: Deliverer) -> None:
        self.outbox = outbox
        self.deliverer = deliverer

    def confirmed(self, event: IncidentConfirmed) -> None:
        self.outbox.enqueue_report(event.case)

    def updated(self, event: IncidentUpdated) -> None:
        self.outbox.enqueue_observation(event.incident_id, event.observation)

    def cleared(self, event: IncidentCleared) -> None:
        self.outbox.enqueue_observation(event.incident.id, event.observation)

    def inherited(self, event: InheritedReports) -> None:
        for report in event.reports:
            self.outbox.enqueue_report(report)
        for incident_id, observation in event.clearings:
            self.outbox.enqueue_observation(incident_id, observation)

    def wake(self, event: object) -> None:
        self.deliverer.wake()


class LogSink:
    """The worker log's lines of what was queued for the API (operators and tests read
    them), written before the deliverer is woken to post it."""

    def confirmed(self, event: IncidentConfirmed) -> None:
        i = event.incident
        log.info(
            "camera %s: %s confirmed in zone %s (%s %.2f): %s",
            event.camera_id, i.type, i.zone_id, i.class_name, i.confidence, i.id,
        )  # fmt: skip

    def cleared(self, event: IncidentCleared) -> None:
        i = event.incident
        log.info("camera %s: %s cleared: %s", event.camera_id, i.type, i.id)

    def inherited(self, event: InheritedReports) -> None:
        log.info(
            "camera %s: %d reports and %d clearings its previous worker did not deliver",
            event.camera_id, len(event.reports), len(event.clearings),
        )  # fmt: skip


class MetricsSink:
    """The per-camera series of `WorkerMetrics` that events move."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def sample(self, event: SampleSettled) -> None:
        self.metrics.processed.labels(event.camera_id).inc()
        if event.frame.wall_time is not None:
            self.metrics.lag.labels(event.camera_id).set(event.now - event.frame.wall_time)

    def incident(self, event: IncidentConfirmed | IncidentCleared) -> None:
        kind = "confirmed" if isinstance(event, IncidentConfirmed) else "cleared"
        self.metrics.incidents.labels(event.camera_id, event.incident.type, kind).inc()

    def health(self, event: HealthEvent) -> None:
        self.metrics.health.labels(event.camera_id, event.kind).inc()

    def stopped(self, event: CameraStopped) -> None:
        if event.left:  # its series would linger until the worker restarts
            self.metrics.forget_camera(event.camera_id)


class HealthSink:
    """Each camera's health and latest frame, for the reporter's thread to post. The state
    per camera it keeps is the reporter's own: what it last posted, and when a thumbnail."""

    def __init__(self, reporter: HealthReporter) -> None:
        self.reporter = reporter

    def sample(self, event: SampleSettled) -> None:
        frame = event.frame
        self.reporter.saw(event.camera_id, frame.image, frame.wall_time or event.now)

    def stopped(self, event: CameraStopped) -> None:
        if event.left:
            self.reporter.forget(event.camera_id)


class FeedbackSink:
    """The feedback's held incidents are its own (one file for every camera); a camera that
    left takes its held ones with it."""

    def __init__(self, feedback: Feedback) -> None:
        self.feedback = feedback

    def stopped(self, event: CameraStopped) -> None:
        if event.left:
            self.feedback.forget_camera(event.camera_id)


class SiteSink:
    """Cameras' states on disk (streams/camera/site_store.py), where a restarted worker, or the next
    fleet worker, resumes them."""

    def __init__(self, sites: SiteStore) -> None:
        self.sites = sites

    def changed(self, event: SitesChanged) -> None:
        if not event.at_once:
            self.sites.save_soon(event.camera_id, event.state)  # logs its own failures
            return
        try:
            self.sites.save(event.camera_id, event.state)
        except OSError as exc:
            log.error("camera %s: cannot save its open sites (%s)", event.camera_id, exc)

    def dropped(self, event: SitesDropped) -> None:
        self.sites.forget(event.camera_id)


class FleetSink:
    """A fleet worker hands a camera's sites over at once after an incident event (saved
    first by the site sink), so a successor knows of the confirmation or clearing."""

    def __init__(self, fleet: FleetCameras) -> None:
        self.fleet = fleet

    def changed(self, event: SitesChanged) -> None:
        if event.why == "incident":
            self.fleet.hand_over_soon(event.camera_id)


class ShadowSink:
    """The candidate model on trial (streams/live/shadow.py), if the config names one; replaced
    when its settings change. Its runtimes are its own sites, not the live cameras'."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.registry = metrics.registry
        self.shadow: Shadow | None = None

    def replace(self, config: Config) -> None:
        """The config's shadow model in place of the running one; one that does not load is
        logged and left out (the live model carries on)."""
        if self.shadow is not None:
            self.shadow.close(self.registry)
            self.shadow = None
        if config.shadow is None:
            return
        try:
            self.shadow = Shadow(config, self.registry)
        except (ModelError, OSError, ValueError) as exc:
            log.error("shadow model %r does not load (%s): no shadow", config.shadow.model, exc)
            return
        log.info("shadow: %s runs beside the live model, never posted", self.shadow.model)

    def batch(self, event: BatchSettled) -> None:
        if self.shadow is not None:
            self.shadow.observe(event.samples)

    def stopped(self, event: CameraStopped) -> None:
        if self.shadow is not None:
            self.shadow.forget(event.camera_id)


@dataclass(slots=True)
class Sinks:
    """Everything a live worker's cameras publish to, subscribed on one bus."""

    bus: Bus
    outbox: Outbox
    deliverer: Deliverer
    suppressions: SuppressionCache
    feedback: Feedback
    health: HealthReporter
    sites: SiteStore
    shadow: ShadowSink
    fleet: FleetCameras | None  # a fleet worker's cameras, and where their sites go

    @classmethod
    def wire(
        cls,
        config: Config,
        state_dir: Path,
        key: str,
        metrics: WorkerMetrics,
        evidence_dir: Path,
        bus: Bus | None = None,
        fleet_id: str | None = None,
    ) -> Sinks:
        """The sinks of a worker with state in `state_dir`, subscribed on `bus` (a new one by
        default; sinks already on it hear each event before these); `fleet_id`: the worker
        takes its cameras from the API's fleet, under that id, and hands their sites over."""
        assert config.api is not None
        api = config.api
        outbox = Outbox(state_dir / OUTBOX_FILE, evidence_dir=evidence_dir)
        deliverer = Deliverer(
            outbox,
            lambda: IntakeClient(api.url, key),
            evidence_dir=evidence_dir,
            on_delivered=metrics.posted.inc,
        )
        # The review feedback loop: suppressions, zone hours, camera health.
        suppressions = SuppressionCache(
            state_dir / "suppressions.json",
            IntakeClient(api.url, key, timeout=10).get_suppressions,
            api.suppressions_poll_s,
        )
        feedback = Feedback(suppressions, metrics.registry, state_dir / "held.json")
        reporter = HealthReporter(
            IntakeClient(api.url, key, timeout=10).post_camera_health, api.health_every_s
        )
        sites = SiteStore(state_dir / "sites")
        client = IntakeClient(api.url, key, timeout=10)
        fleet = FleetCameras(client, fleet_id, sites) if fleet_id else None
        shadow = ShadowSink(metrics)  # empty until the worker has its models: `replace`

        bus = bus or Bus()
        to_outbox, to_metrics = OutboxSink(outbox, deliverer), MetricsSink(metrics)
        to_health, to_sites = HealthSink(reporter), SiteSink(sites)
        to_log = LogSink()
        bus.subscribe(IncidentConfirmed, to_outbox.confirmed, durable=True)
        bus.subscribe(IncidentUpdated, to_outbox.updated, durable=True)
        bus.subscribe(IncidentCleared, to_outbox.cleared, durable=True)
        bus.subscribe(InheritedReports, to_outbox.inherited, durable=True)
        bus.subscribe(IncidentConfirmed, to_log.confirmed)
        bus.subscribe(IncidentCleared, to_log.cleared)
        bus.subscribe(InheritedReports, to_log.inherited)
        bus.subscribe(IncidentConfirmed, to_metrics.incident)
        bus.subscribe(IncidentCleared, to_metrics.incident)
        for kind in (IncidentConfirmed, IncidentCleared, InheritedReports):
            bus.subscribe(kind, to_outbox.wake)
        bus.subscribe(SampleSettled, to_health.sample)
        bus.subscribe(SampleSettled, to_metrics.sample)
        bus.subscribe(HealthEvent, to_metrics.health)
        bus.subscribe(HealthEvent, reporter.event)
        bus.subscribe(SitesChanged, to_sites.changed)
        if fleet is not None:
            bus.subscribe(SitesChanged, FleetSink(fleet).changed)
        bus.subscribe(SitesDropped, to_sites.dropped)
        bus.subscribe(BatchSettled, shadow.batch)
        bus.subscribe(CameraStopped, shadow.stopped)
        bus.subscribe(CameraStopped, to_metrics.stopped)
        bus.subscribe(CameraStopped, FeedbackSink(feedback).stopped)
        bus.subscribe(CameraStopped, to_health.stopped)
        return cls(bus, outbox, deliverer, suppressions, feedback, reporter, sites, shadow, fleet)

    def start(self) -> None:
        """The sinks' threads: delivery, suppressions (fetched once first: the saved copy
        if that fails), health reports."""
        self.deliverer.start()
        self.suppressions.refresh()  # before the first frame
        self.suppressions.start()
        self.health.start()

    def stop(self) -> int:
        """Writes what is pending, drains the outbox a little and stops the threads; returns
        how many items still wait in the outbox."""
        self.sites.close()
        self.deliverer.stop(drain_s=5.0)
        self.suppressions.stop()
        self.health.stop()
        pending = self.outbox.counts()["outbox"]
        self.outbox.close()
        return pending
