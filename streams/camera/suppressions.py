"""The worker's half of the review feedback loop: sites reviewers suppressed, zone hours.

`SuppressionCache` fetches the suppressions from the API now and then and keeps the last
copy on disk, so an API outage (or a restart during one) changes nothing. `Feedback` holds
back a confirmed incident while a suppression matches its site (camera, zone, type, box
overlap; in force: active, not expired, in its schedule) or while its zone is outside the
hours in the zone's `schedule`: it is not reported, and counted. A held incident whose
reason lapses while it is still there (a morning market's hours end) is reported then; one
that clears while held was never reported and is forgotten.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import TypeAdapter, ValidationError

from api.contract.suppression_rules import SuppressionRule
from detector.incidents import Incident, IncidentEvent
from streams.config import CameraConfig

log = logging.getLogger(__name__)

HeldWhy = Literal["suppressed", "off_hours"]
_RULES = TypeAdapter(list[SuppressionRule])


class SuppressionCache:
    """The suppressions, refreshed by a background thread; the last copy lives in `path`."""

    def __init__(
        self, path: Path, fetch: Callable[[], list[SuppressionRule]], poll_s: float = 30.0
    ) -> None:
        self.path = path
        self.fetch = fetch
        self.poll_s = poll_s
        self.rules: list[SuppressionRule] = self._load()
        self.fetched_at: float | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self) -> list[SuppressionRule]:
        try:
            rules = _RULES.validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValidationError) as exc:
            log.error("suppressions: cannot read the saved copy %s (%s)", self.path, exc)
            return []
        log.info("suppressions: %d from the saved copy", len(rules))
        return rules

    def refresh(self) -> bool:
        """One fetch; on failure the rules stay as they were."""
        import time

        try:
            rules = self.fetch()
        except Exception as exc:  # any failure: keep the last copy
            self.failures += 1
            if self.failures == 1 or self.failures % 20 == 0:
                log.warning("suppressions: fetch failed (%s); keeping %d", exc, len(self.rules))
            return False
        if self.failures:
            log.info("suppressions: fetched again after %d failures", self.failures)
        self.failures = 0
        self.fetched_at = time.time()
        if rules != self.rules:
            log.info("suppressions: %d now (were %d)", len(rules), len(self.rules))
        self.rules = rules
        try:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(_RULES.dump_json(rules))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.error("suppressions: cannot save a copy to %s (%s)", self.path, exc)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="suppressions", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):  # the first fetch is the caller's
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


class Feedback:
    """Filters a camera's incident events by suppressions and zone hours (see module doc)."""

    def __init__(
        self,
        cache: SuppressionCache | None,
        registry: CollectorRegistry,
        state_path: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.state_path = state_path
        # Per camera, the incidents held back and why: the feedback's own record (one file
        # for every camera), not the live camera's state (streams/live/live_camera.py).
        self.held: dict[str, dict[str, HeldWhy]] = self._load()
        self.suppressed = Counter(
            "streetwatch_suppressed",
            "confirmed incidents not reported: a suppression matched (suppressed) or the "
            "zone was outside its hours (off_hours)",
            ["camera", "why"],
            registry=registry,
        )
        self.released = Counter(
            "streetwatch_suppression_released",
            "held incidents reported after all, their suppression or zone hours over",
            ["camera"],
            registry=registry,
        )
        Gauge(
            "streetwatch_suppressions", "suppressions the worker applies", registry=registry
        ).set_function(lambda: len(self.cache.rules) if self.cache else 0)

    def _load(self) -> dict[str, dict[str, HeldWhy]]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        try:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.held))
            os.replace(tmp, self.state_path)
        except OSError as exc:
            log.error("cannot save held incidents to %s (%s)", self.state_path, exc)

    def holds(self, incident_id: str) -> bool:
        return any(incident_id in held for held in self.held.values())

    def why(self, camera: CameraConfig, incident: Incident, when: datetime) -> HeldWhy | None:
        zone = next((z for z in camera.zones if z.id == incident.zone_id), None)
        schedule = getattr(zone, "schedule", None)
        if schedule is not None and not schedule.active(when):
            return "off_hours"
        rules = self.cache.rules if self.cache else []
        box = [float(v) for v in incident.box]
        if any(r.matches(camera.id, incident.zone_id, incident.type, box, when) for r in rules):
            return "suppressed"
        return None

    def filter(
        self,
        camera: CameraConfig,
        events: list[IncidentEvent],
        open_now: Callable[[], Iterable[Incident]],
    ) -> list[IncidentEvent]:
        """The events to report: confirmed ones held back while suppressed or off hours,
        the clearing of a held one dropped, held ones whose reason lapsed released."""
        held = self.held.get(camera.id, {})
        if not events and not held:
            return events
        when = self.clock()
        out: list[IncidentEvent] = []
        changed = False
        for event in events:
            incident = event.incident
            if event.kind == "confirmed":
                why = self.why(camera, incident, when)
                if why is not None:
                    held[incident.id] = why
                    changed = True
                    self.suppressed.labels(camera.id, why).inc()
                    log.info(
                        "camera %s: %s in zone %s not reported (%s): %s",
                        camera.id, incident.type, incident.zone_id, why, incident.id,
                    )  # fmt: skip
                    continue
            elif incident.id in held:
                del held[incident.id]
                changed = True
                continue
            out.append(event)
        if held:
            still_open = {i.id: i for i in open_now()}
            for incident_id in list(held):
                incident = still_open.get(incident_id)
                if incident is None:
                    del held[incident_id]
                    changed = True
                elif self.why(camera, incident, when) is None:
                    del held[incident_id]
                    changed = True
                    self.released.labels(camera.id).inc()
                    log.info("camera %s: %s now reported (no longer held)", camera.id, incident_id)
                    out.append(IncidentEvent("confirmed", incident))
        if held:
            self.held[camera.id] = held
        else:
            self.held.pop(camera.id, None)
        if changed:
            self._save()
        return out

    def forget_camera(self, camera_id: str) -> None:
        if self.held.pop(camera_id, None) is not None:
            self._save()
