"""A live camera: its streams, its runtime and what it knows of its incidents, from its first
sample to its hand-over. What happens to it is published on the worker's bus
(streams/live/live_events.py) for the sinks (streams/live/sinks.py), which it never calls itself; it
asks the feedback what to hold back, writes its evidence and reads its saved sites.

The camera's own state, saved with its sites (`state`: a `CameraState` around the runtime's
`PipelineState`) and so handed over with them in a fleet: its runtime (`CameraRuntime`:
zones, rules, open sites, clock), its streams (the one it is judged on, and its main stream
for evidence when `record_source` is set), and per open incident what was reported
(`reports`), its evidence references (`evidence`) and when it was last observed to the API
(`observed_at`).

What stays in a sink is that sink's own bookkeeping, not the camera's: the feedback's held
incidents (one file for all cameras, what the reviewers' rules held back), the health
reporter's last state and thumbnail time per camera (read by its own thread), the shadow
model's runtimes (the candidate's own sites), the outbox's queue and the site store's
pending writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from api.client.outbox import Outbox, OutboxError
from api.contract import CaseReport, EvidenceRef, Observation
from detector.incidents import Incident, IncidentEvent
from detector.types import Detections, Frame
from streams.camera.evidence import EvidenceWriter
from streams.camera.reconcile import adopt, reconcile
from streams.camera.record import RecordStream
from streams.camera.runtime import CameraRuntime
from streams.camera.site_store import CameraState, SiteStore
from streams.camera.suppressions import Feedback
from streams.config import CameraConfig
from streams.live.fleet import FleetCameras
from streams.live.live_events import (
    Bus,
    CameraStopped,
    IncidentCleared,
    IncidentConfirmed,
    IncidentUpdated,
    InheritedReports,
    SampleSettled,
    SaveWhy,
    SitesChanged,
    SitesDropped,
)
from streams.sources.health import HealthEvent, report
from streams.sources.rtsp import RtspSource

log = logging.getLogger(__name__)

OBSERVE_EVERY_S = 60.0  # how often an open incident's last_seen goes to the API
# How often the static stage's backgrounds go to disk with a camera's changed state (always
# with an incident event and at a stop). They change slowly (the long-term one over half an
# hour) and are nearly a megabyte, saved with every sample they were most of a camera's disk
# writes and of the writer thread's CPU; a restarted worker observes the rest again.
STATIC_SAVE_EVERY_S = 30.0


@dataclass(frozen=True, slots=True)
class CameraContext:
    """What a worker's cameras share: the bus they publish on, the feedback that holds back
    what reviewers suppressed, the evidence directory, the site store they resume from (the
    site sink writes it), the backlog of events the disk refused, the outbox (what a camera
    reported, which its saved sites may be a step behind), and for a fleet worker the fleet,
    which tells what the API holds of a camera taken over."""

    bus: Bus
    feedback: Feedback
    evidence: EvidenceWriter
    sites: SiteStore
    backlog: Backlog
    outbox: Outbox
    fleet: FleetCameras | None = None


class LiveCamera:
    """One camera of a live worker, through its life: `start` its stream; `settle` each
    sample's detections (the first one starts its runtime and resumes its saved sites);
    `save` its state now and then; `rebuild` it on new settings; `retire` it (stop, queue
    its open incidents' latest state, save or drop its sites)."""

    def __init__(
        self,
        config: CameraConfig,
        source: RtspSource,
        runtime: CameraRuntime,
        context: CameraContext,
        record: RecordStream | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.runtime = runtime  # started at the first frame: its epoch is then
        self.record = record  # the main stream, for evidence (record_source)
        self.context = context
        self.bus = context.bus
        self.reports: dict[str, CaseReport] = {}  # what was reported of each open incident
        self.evidence: dict[str, list[EvidenceRef]] = {}  # each open incident's evidence
        self.observed_at: dict[str, float] = {}  # when each open incident was last observed
        self.unsaved = False  # its state changed since it was last saved
        self._static_saved_at = -float("inf")  # monotonic

    @property
    def id(self) -> str:
        return self.config.id

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.source.start()

    def _begin(self, frame: Frame, now: float) -> None:
        """Starts the runtime at the first frame and continues the sites a previous run of
        this worker (or, in a fleet, the camera's previous worker) left open: the same
        incidents under the same ids, reported once. The state is first brought up to what
        the outbox holds (a worker killed between queueing an incident event and saving the
        sites), or, handed over, to what the API holds (streams/camera/reconcile.py)."""
        self.runtime.start_live(frame, now)
        state = self.context.sites.load(self.id)
        if state is None:
            return
        fleet = self.context.fleet
        reported = fleet.reported(self.id) if fleet is not None else None
        if reported is not None:
            self._inherit(*reconcile(self.id, state, reported))
        else:
            try:
                adopt(self.id, state, self.context.outbox.reports(self.id), "its outbox")
            except OutboxError as exc:
                log.error("camera %s: %s; its saved sites resume as saved", self.id, exc)
        restored = self.runtime.restore(state.pipeline)
        self.reports.update(state.reports)
        now_m = time.monotonic()
        for incident_id, refs in state.evidence.items():
            self.evidence[incident_id] = list(refs)
            self.observed_at[incident_id] = now_m
        log.info(
            "camera %s: resumed %d open sites (%d reported incidents) saved %.0f s ago",
            self.id,
            restored,
            len(state.reports),
            time.time() - state.saved_at,
        )

    def _inherit(self, to_post: list[CaseReport], to_clear: list[CaseReport]) -> None:
        """Queues what the camera's previous worker queued and never delivered: reports of
        incidents it confirmed (without their evidence, which stayed on its disk) and the
        clearings of incidents it cleared."""
        if not (to_post or to_clear):
            return
        event = InheritedReports(
            self.id,
            [r.model_copy(update={"evidence": []}) for r in to_post],
            [(r.id, Observation(last_seen=r.last_seen, cleared_at=r.cleared_at)) for r in to_clear],
        )
        try:
            self.bus.publish(event)
        except (OSError, OutboxError) as exc:
            log.error("camera %s: cannot queue its predecessor's reports (%s)", self.id, exc)

    def rebuild(self, config: CameraConfig, runtime: CameraRuntime) -> None:
        """Takes a new runtime (new zones, rules or model), continuing the sites of its zones
        that remain (their dwell timers included); the streams go on untouched."""
        old = self.runtime
        if old.started:
            assert old.epoch is not None
            runtime.start(old.epoch)
            kept = runtime.restore(old.snapshot())
            log.info("camera %s: settings applied, %d open sites continue", config.id, kept)
        gone = {i.id for i in old.open_incidents()} - {i.id for i in runtime.open_incidents()}
        for incident_id in gone:  # a zone or type no longer checked: its case stays as sent
            self._forget(incident_id)
        self.config, self.runtime = config, runtime

    def stop_streams(self, wait: bool = True) -> None:
        self.source.stop(wait=wait)
        if self.record is not None:
            self.record.stop(wait=wait)

    def retire(self, removed: bool = False, left: bool = False, wait: bool = True) -> None:
        """Stops the camera; its open incidents' latest state goes to the outbox first. Its
        sites are saved for the next start (or the next owner), or dropped if `removed` from
        the configuration. `left`: it runs on this worker no more (removed, or moved to
        another fleet worker), rather than restarting or stopping with the worker."""
        self.stop_streams(wait)
        if removed:
            self.bus.publish(SitesDropped(self.id))
        else:
            self.save("stop")
        for incident in self.runtime.open_incidents():
            self._observe(incident)
            self.evidence.pop(incident.id, None)
        self.bus.publish(CameraStopped(self.id, left))

    # -- one sample ----------------------------------------------------------------------

    def settle(self, frame: Frame, detections: Detections, now: float) -> None:
        """Runs a sample's detections through the rules and reports what they found."""
        runtime = self.runtime
        if not runtime.started:
            self._begin(frame, now)
        events = runtime.process(frame, detections)
        self.unsaved = True
        main = None
        if self.record is not None:
            assert runtime.pipeline is not None
            self.record.want(runtime.pipeline.busy)
            for event in events:
                self.record.upgrade(event, frame)
            main = self.record.matching(frame)
        runtime.read_plates(frame, events, main.image if main is not None else None)
        # Suppressed sites and zones outside their hours are held back, not reported.
        events = self.context.feedback.filter(self.config, events, runtime.open_incidents)
        for event in events:
            self.context.backlog.submit(self, event)
        if events:  # the sites' state goes to disk with the outbox entry it explains
            self.save("incident")
        for scene in runtime.take_scene_events():
            if scene.kind == "moved":
                detail = f"the camera moved at {scene.pts:.0f} s: check its zones"
                report(HealthEvent(self.id, "scene_changed", detail), self.bus.publish)
        self._observe_open()
        self.bus.publish(SampleSettled(self.id, frame, now))

    def report_now(self, event: IncidentEvent) -> None:
        """Writes the event's evidence and publishes it; raises OSError or OutboxError if
        the disk refuses (the backlog keeps the event then, to try again)."""
        incident = event.incident
        assert self.runtime.epoch is not None
        written = self.context.evidence.write(incident, self.runtime.epoch)
        refs = self.evidence.setdefault(incident.id, [])
        refs += written
        if event.kind == "confirmed":
            case = self.runtime.report(incident, refs)
            self.reports[incident.id] = case
            self.observed_at[incident.id] = time.monotonic()
            self.bus.publish(IncidentConfirmed(self.id, incident, case))
            return
        # Held incidents' clearings never get here (the feedback drops them).
        observation = self._observation(incident, cleared=True, evidence=self._unsent(incident))
        if observation is not None:
            self.bus.publish(IncidentCleared(self.id, incident, observation))
        self._forget(incident.id)

    def _observe_open(self) -> None:
        """Sends each open incident's last_seen now and then, so the API sees it is still there."""
        now = time.monotonic()
        for incident in self.runtime.open_incidents():
            if now - self.observed_at.get(incident.id, now) >= OBSERVE_EVERY_S:
                self._observe(incident)
                self.observed_at[incident.id] = now

    def _unsent(self, incident: Incident) -> list[EvidenceRef]:
        """Writes the incident's pending shots (a better plate crop than the report had) and
        returns every reference its report did not carry: sent again with each observation
        until the incident ends, which the API takes once (evidence is keyed by sha256)."""
        assert self.runtime.epoch is not None
        refs = self.evidence.setdefault(incident.id, [])
        refs += self.context.evidence.write(incident, self.runtime.epoch)
        reported = self.reports.get(incident.id)
        sent = {r.sha256 for r in reported.evidence} if reported else set()
        return [r for r in refs if r.sha256 not in sent]

    def _observe(self, incident: Incident) -> None:
        """Publishes an open incident's latest state; if the disk refuses, the next one will
        carry it (each observation supersedes the last), so it is logged, not kept."""
        if self.context.feedback.holds(incident.id):
            return  # held back: never reported, nothing to update (nor evidence to write)
        try:
            observation = self._observation(incident, evidence=self._unsent(incident))
            if observation is not None:
                self.bus.publish(IncidentUpdated(self.id, incident.id, observation))
        except (OSError, OutboxError) as exc:
            log.error("camera %s: cannot queue an update of %s (%s)", self.id, incident.id, exc)

    def _observation(
        self, incident: Incident, cleared: bool = False, evidence: Iterable[EvidenceRef] = ()
    ) -> Observation | None:
        """The incident's latest state for the API; None while it is held back (suppressed
        or off hours): never reported, nothing to update."""
        if self.context.feedback.holds(incident.id):
            return None
        case = self.runtime.report(incident, evidence)
        return Observation(
            last_seen=case.last_seen,
            cleared_at=case.cleared_at if cleared else None,
            evidence=case.evidence,
            plate=case.plate,
            plate_confidence=case.plate_confidence,
        )

    def _forget(self, incident_id: str) -> None:
        """Drops what the camera kept of an incident nothing more will be said about."""
        self.reports.pop(incident_id, None)
        self.observed_at.pop(incident_id, None)
        self.evidence.pop(incident_id, None)

    # -- saved state ---------------------------------------------------------------------

    def state(self, static: bool = True) -> CameraState:
        """The camera's state as saved and handed over (without the static stage's
        backgrounds unless `static`); it counts as saved from now."""
        self.unsaved = False
        return CameraState(
            self.runtime.snapshot(static),
            dict(self.reports),
            {i: list(self.evidence.get(i, [])) for i in self.reports},
            keeps_static=not static,
        )

    def save(self, why: SaveWhy) -> None:
        """Publishes the state to save once the camera has started: after an incident event
        or as it stops, always, whole; now and then (`changed`), only if it changed since,
        with the backgrounds every STATIC_SAVE_EVERY_S."""
        if not self.runtime.started or (why == "changed" and not self.unsaved):
            return
        now = time.monotonic()
        static = why != "changed" or now - self._static_saved_at >= STATIC_SAVE_EVERY_S
        if static:
            self._static_saved_at = now
        self.bus.publish(SitesChanged(self.id, self.state(static), why))


class Backlog:
    """Incident events the disk refused (a full disk), across the worker's cameras, kept in
    memory in order and tried again: an event waits behind older ones, so a clearing never
    overtakes its report."""

    def __init__(self) -> None:
        self._events: list[tuple[LiveCamera, IncidentEvent]] = []

    def submit(self, camera: LiveCamera, event: IncidentEvent) -> None:
        if self._events:
            self._events.append((camera, event))
            return
        try:
            camera.report_now(event)
        except (OSError, OutboxError) as exc:
            log.error(
                "camera %s: cannot save %s %s (%s); kept in memory, retrying",
                camera.id,
                event.kind,
                event.incident.id,
                exc,
            )
            self._events.append((camera, event))

    def retry(self) -> None:
        events, self._events = self._events, []
        for i, (camera, event) in enumerate(events):
            self.submit(camera, event)
            if self._events:  # the disk still refuses: keep the rest, in order
                self._events += events[i + 1 :]
                return
