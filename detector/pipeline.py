"""One camera's path from detections to incident events: tracker, zones, site rules."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from detector.incidents import Incident, IncidentEvent
from detector.rules import MAX_GAP_S, RuleParams, RuleSpec, SiteRule
from detector.tracker import Tracker
from detector.types import Detections, Frame
from detector.zones import Zone


class CameraPipeline:
    """Feeds each sampled frame's detections through the camera's zones and rules.

    `epoch` is the wall time of media time zero (a file's `start_time`, or when a live
    source started): incident ids and reported times derive from it. `max_gap_s` bounds how
    much observed time one step between frames can count (see detector.rules).
    """

    def __init__(
        self,
        camera_id: str,
        zones: list[Zone],
        specs: dict[str, RuleSpec],
        class_names: list[str],
        epoch: datetime,
        tracker: Tracker | None = None,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        self.camera_id = camera_id
        self.zones = zones
        self.tracker = tracker or Tracker()
        self.rules: list[tuple[Zone, SiteRule]] = [
            (zone, SiteRule(camera_id, zone, specs[t], class_names, epoch, max_gap_s))
            for zone in zones
            for t in sorted(zone.checks)
            if t in specs
        ]
        self.last_track_ids = np.zeros(0, np.int64)

    def process(self, frame: Frame, dets: Detections) -> list[IncidentEvent]:
        self.last_track_ids = self.tracker.update(dets, frame.pts)
        ground = dets.ground_points
        events: list[IncidentEvent] = []
        in_zone_cache: dict[str, np.ndarray] = {}
        for zone, rule in self.rules:
            if zone.id not in in_zone_cache:
                in_zone_cache[zone.id] = zone.contains(ground)
            events.extend(rule.update(frame, dets, in_zone_cache[zone.id]))
        return events

    def open_incidents(self) -> list[Incident]:
        """Incidents confirmed and not yet cleared (still present at the end of a file)."""
        return [i for _, rule in self.rules for i in rule.open_incidents()]


def rule_specs(
    class_names: list[str],
    incident_classes: dict[str, list[str]],
    stall_attendant_classes: list[str],
    params: dict[str, RuleParams],
) -> dict[str, RuleSpec]:
    """The rules a model can feed: types with no class in this model are left out."""
    index = {name: i for i, name in enumerate(class_names)}
    specs: dict[str, RuleSpec] = {}
    for type_, names in incident_classes.items():
        if not names:
            continue
        attendants = stall_attendant_classes if type_ == "street_stall" else []
        specs[type_] = RuleSpec(
            type=type_,
            params=params[type_],
            class_ids=frozenset(index[n] for n in names),
            attendant_ids=frozenset(index[n] for n in attendants),
        )
    return specs
