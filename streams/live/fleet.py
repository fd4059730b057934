"""Where a fleet worker gets its cameras: from the intake API (api/contract/fleet.py), not the YAML.

A thread heartbeats every `heartbeat_s` with the cameras the worker runs; the answer is the
cameras it should run. Before the worker starts a camera new to it, the thread fetches the
camera's open sites as the previous worker handed them over (into the worker's SiteStore, where
the worker resumes them), and the reports this key holds for the camera, which the worker
reconciles that state with (streams/camera/reconcile.py); before the heartbeat that says a
camera no longer runs here, it hands that camera's sites over. A camera's sites are handed over
at once after each incident event (confirmed, cleared), and every `state_every_s` otherwise, so
a worker that dies loses at most that much of a dwell (plus the worker's save interval), which
its successor observes again. Without an answer for the fleet's TTL it stops every camera: a
worker cut off from the API must not go on watching what the others have taken over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pydantic import ValidationError

from api.client import IntakeClient, IntakeError
from api.contract.fleet import Assignment, ReportedIncident
from streams.camera.site_store import SiteStore
from streams.config import CameraConfig

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 10.0  # until the API says its own


class FleetCameras:
    """The camera-provider seam for `streetwatch run --fleet`: `changed` is set when the
    cameras to run differ from the last `take`; the worker reports what runs with `running`
    and asks for a camera's sites to be handed over with `save`."""

    def __init__(
        self,
        client: IntakeClient,
        worker_id: str,
        sites: SiteStore,
        heartbeat_s: float = 2.0,
        state_every_s: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.sites = sites
        self.heartbeat_s = heartbeat_s
        self.state_every_s = state_every_s
        self.clock = clock
        self.changed = threading.Event()
        self.ttl_s = DEFAULT_TTL_S
        self.last_answer: float | None = None  # clock time of the last heartbeat answered
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._to_hand_over: set[str] = set()
        self._urgent: set[str] = set()  # cameras with an incident event since their hand-over
        self._wake = threading.Event()
        self._reported: dict[str, list[ReportedIncident]] = {}  # fetched with the state
        self._cameras: list[CameraConfig] = []
        self._definitions: dict[str, object] = {}
        self._last_handover = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleet", daemon=True)

    # -- the worker's side ------------------------------------------------------------------

    def take(self) -> list[CameraConfig]:
        self.changed.clear()
        return self.current()

    def current(self) -> list[CameraConfig]:
        with self._lock:
            return list(self._cameras)

    def running(self, camera_ids: set[str], released: set[str]) -> None:
        """What runs after the worker applied `take`, and which cameras it stopped (their
        sites saved): those are handed over before the API hears they stopped."""
        with self._lock:
            self._running = set(camera_ids)
            self._to_hand_over |= released

    def hand_over_soon(self, camera_id: str) -> None:
        """The camera's saved state changed with an incident event: hand it over now, not at
        the next interval, so a successor knows of the confirmation or clearing."""
        with self._lock:
            self._urgent.add(camera_id)
        self._wake.set()

    def reported(self, camera_id: str) -> list[ReportedIncident] | None:
        """What the API held for the camera when its handed-over state was fetched (taken:
        once); None if the state was not fetched from the API."""
        with self._lock:
            return self._reported.pop(camera_id, None)

    @property
    def connected(self) -> bool:
        """An answer from the API within the TTL."""
        return self.last_answer is not None and self.clock() - self.last_answer < self.ttl_s

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread, then one last heartbeat: hands over what the worker released
        and says what still runs (nothing, at a clean stop)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.beat(leaving=True)
        self.client.close()

    # -- the thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.beat()
            deadline = time.monotonic() + self.heartbeat_s
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if self._wake.wait(left):
                    self._wake.clear()
                    self.hand_over_urgent()

    def hand_over_urgent(self) -> None:
        """Hands over the cameras `hand_over_soon` named (between heartbeats)."""
        with self._lock:
            due = sorted(self._urgent & self._running)
            self._urgent.clear()
        for camera_id in due:
            self._hand_over(camera_id)

    def beat(self, leaving: bool = False) -> None:
        """One heartbeat: hand over what is due, report what runs, take the answer; or,
        `leaving`, say this worker leaves the fleet (its cameras move at once)."""
        now = self.clock()
        with self._lock:
            due = set(self._to_hand_over) | (self._urgent & self._running)
            self._urgent.clear()
            if now - self._last_handover >= self.state_every_s:
                due |= self._running
                self._last_handover = now
            running = sorted(self._running)
        for camera_id in sorted(due):
            self._hand_over(camera_id)
        try:
            answer = self.client.heartbeat(self.worker_id, running, leaving)
        except IntakeError as exc:
            log.warning("fleet: heartbeat failed (%s)", exc)
            if self.last_answer is not None and not self.connected:
                self._publish([], "no answer from the API for the fleet's TTL")
            return
        self.last_answer = self.clock()
        self.ttl_s = answer.ttl_s
        if not leaving:
            self._accept(answer)

    def _hand_over(self, camera_id: str) -> None:
        data = self.sites.pack(camera_id)
        try:
            if data is not None:
                self.client.put_camera_state(self.worker_id, camera_id, data)
        except IntakeError as exc:
            log.warning("fleet: camera %s: cannot hand its sites over (%s)", camera_id, exc)
            if getattr(exc, "status", None) != 409:  # 409: another worker has it now
                return  # kept due: the next heartbeat tries again
        with self._lock:
            self._to_hand_over.discard(camera_id)

    def _accept(self, answer: Assignment) -> None:
        definitions = {c.camera_id: c.definition for c in answer.cameras}
        if definitions == self._definitions:
            return
        cameras = []
        for camera_id, definition in definitions.items():
            try:
                cameras.append(CameraConfig.model_validate(definition))
            except ValidationError as exc:
                log.error("fleet: camera %s: its definition is refused: %s", camera_id, exc)
        with self._lock:
            new = [c.id for c in cameras if c.id not in self._running]
        for camera_id in new:
            self._fetch_state(camera_id)
        self._definitions = definitions
        self._publish(cameras, f"{len(cameras)} cameras of {answer.live_workers} live workers'")

    def _fetch_state(self, camera_id: str) -> None:
        """The sites the camera's previous worker handed over, where the worker resumes them,
        and what the API holds of the camera's reports; with no state, the camera starts
        afresh here (older local state is stale)."""
        try:
            data = self.client.get_camera_state(camera_id)
        except IntakeError as exc:
            log.warning("fleet: camera %s: cannot fetch its sites (%s)", camera_id, exc)
            return
        reported = None
        if data is not None:
            try:
                reported = self.client.camera_reports(camera_id)
            except IntakeError as exc:  # the sites still resume, as they were handed over
                log.warning("fleet: camera %s: cannot fetch its reports (%s)", camera_id, exc)
        with self._lock:
            if reported is None:
                self._reported.pop(camera_id, None)
            else:
                self._reported[camera_id] = reported
        try:
            if data is None:
                self.sites.forget(camera_id)
            else:
                self.sites.unpack(camera_id, data)
        except (ValueError, OSError) as exc:
            log.error("fleet: camera %s: its handed-over sites are unusable (%s)", camera_id, exc)
            self.sites.forget(camera_id)

    def _publish(self, cameras: list[CameraConfig], why: str) -> None:
        with self._lock:
            if cameras != self._cameras:
                self._cameras = cameras
                self.changed.set()
                log.info(
                    "fleet: worker %s now runs %s (%s)",
                    self.worker_id,
                    [c.id for c in cameras],
                    why,
                )
        if not cameras:
            self._definitions = {}
