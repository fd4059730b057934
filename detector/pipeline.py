"""One camera's path from detections to incident events: stages, zones, site rules."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from api.contract import IncidentType
from detector.incidents import Incident, IncidentEvent
from detector.rules import (
    MAX_GAP_S,
    RuleParams,
    RuleSpec,
    SiteRule,
    restore_site,
    site_state,
    touching,
)
from detector.stages import EXTRA_FILLS, Stage, TrackingStage
from detector.static_objects import STATIC_LABEL, SceneEvent, StaticObjectStage, StaticParams
from detector.tracker import Tracker
from detector.types import Detections, Frame
from detector.zones import Zone

log = logging.getLogger(__name__)

# What the static-object stand-in makes of a static object, by type: a stall when people stay
# with it, garbage when nobody does. Types not listed are never raised by it.
# The model class whose boxes are people (COCO's, as every model we ship names it).
PERSON = "person"

STATIC_VERDICTS: dict[IncidentType, str] = {
    IncidentType.street_stall: "attended",
    IncidentType.garbage: "unattended",
}


@dataclass(slots=True)
class PipelineState:
    """A camera pipeline's open sites and static backgrounds, times absolute."""

    sites: dict[str, list[dict]]  # "zone|type" -> site states (JSON-ready)
    shots: dict[str, np.ndarray]  # "zone|type|n" -> the site's first-seen frame
    static: dict[str, np.ndarray] | None


@dataclass(frozen=True, slots=True)
class Labels:
    """A camera's class names (the model's, then the stages') and the rules they feed."""

    names: list[str]
    specs: dict[str, RuleSpec]
    static_id: int | None  # the static label's class id, if a rule uses it

    @property
    def explain_ids(self) -> frozenset[int]:
        """Classes whose stationary detections account for static pixels: the people and
        everything a rule already watches (vehicles, stand-in umbrellas)."""
        return next(iter(self.specs.values())).occluder_ids if self.specs else frozenset()


def labels_for(
    class_names: list[str],
    incident_classes: Mapping[str, Sequence[str]],
    attendant_classes: Sequence[str],
    stand_in_classes: Mapping[str, Sequence[str]],
    params: Mapping[str, RuleParams],
) -> Labels:
    """The rules a model (and the static stand-in) can feed; types with nothing to feed them
    are left out. `stand_in_classes` are model classes that only look like a type (COCO's
    umbrella for a stall) and need attendants; the model's other classes of a type raise it
    on their own and, unless the type's `stand_in` is `on`, replace the static stand-in."""
    index = {name: i for i, name in enumerate(class_names)}
    names = list(class_names)
    static_id: int | None = None
    attendants = frozenset(index[n] for n in attendant_classes)
    specs: dict[str, RuleSpec] = {}
    for type_ in IncidentType:
        p = params[type_]
        mapped = set(incident_classes.get(type_, ()))
        look_alike = mapped & set(stand_in_classes.get(type_, ()))
        trained = mapped - look_alike
        verdict = STATIC_VERDICTS.get(type_)
        static = verdict is not None and (
            p.stand_in == "on" or (p.stand_in == "auto" and not trained)
        )
        if static and static_id is None:
            static_id = len(names)
            names.append(STATIC_LABEL)
        static_ids = frozenset({static_id}) if static else frozenset()
        spec = RuleSpec(
            type=type_,
            params=p,
            class_ids=frozenset(index[n] for n in trained),
            attended_ids=frozenset(index[n] for n in look_alike)
            | (static_ids if verdict == "attended" else frozenset()),
            unattended_ids=static_ids if verdict == "unattended" else frozenset(),
            attendant_ids=attendants,
        )
        if spec.feeds:
            specs[type_] = spec
    # Whatever the model sees that rules watch, people included, can stand in front of a site.
    occluders = frozenset().union(*(s.class_ids | s.attended_ids for s in specs.values()))
    occluders = (occluders | attendants) - {static_id}
    specs = {t: replace(s, occluder_ids=occluders) for t, s in specs.items()}
    return Labels(names, specs, static_id)


class CameraPipeline:
    """Feeds each sampled frame through the camera's stages, zones and rules.

    `epoch` is the wall time of media time zero (a file's `start_time`, or when a live
    source started): incident ids and reported times derive from it. `max_gap_s` bounds how
    much observed time one step between frames can count (see detector.rules). The static
    stage runs only when a zone checks a type it feeds.
    """

    def __init__(
        self,
        camera_id: str,
        zones: list[Zone],
        labels: Labels,
        epoch: datetime,
        static_params: StaticParams | None = None,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        self.camera_id = camera_id
        self.zones = zones
        self.labels = labels
        self.tracker = Tracker(max_age_s=max(3.0, max_gap_s))
        self.rules: list[tuple[Zone, SiteRule]] = [
            (zone, SiteRule(camera_id, zone, labels.specs[t], labels.names, epoch, max_gap_s))
            for zone in zones
            for t in sorted(zone.checks)
            if t in labels.specs
        ]
        self.stages: list[Stage] = [TrackingStage(self.tracker)]
        self.static: StaticObjectStage | None = None
        sid = labels.static_id
        if sid is not None and any(sid in rule.spec.feeds for _, rule in self.rules):
            self.static = StaticObjectStage(
                static_params or StaticParams(), sid, labels.explain_ids, zones, max_gap_s
            )
            self.stages.append(self.static)
        self.scene_events: list[SceneEvent] = []  # scene changes the caller has not taken
        # Whose heads an evidence shot's rendition obscures (detector.deidentify).
        self.person_ids = np.array([i for i, n in enumerate(labels.names) if n == PERSON], np.int32)

    @property
    def busy(self) -> bool:
        """Whether the rules follow something (a candidate or open site): a camera sampled
        slowly while idle speeds up while busy. The static stage needs no more than its
        short-term time constant between samples: an object's dwell runs from when its
        pixels first differed, however late it counts as static."""
        return any(rule.sites for _, rule in self.rules)

    def set_max_gap(self, seconds: float) -> None:
        """The longest step between frames that counts as observed time (see rules)."""
        for _, rule in self.rules:
            rule.max_gap_s = seconds
        if self.static is not None:
            self.static.max_gap_s = seconds

    def observe(self, frame: Frame, dets: Detections) -> Detections:
        """Every stage's observations of the frame, after the engine's detections."""
        if self.static is not None:
            self.static.followed = self._followed()
        parts = [dets]
        for stage in self.stages:
            added = stage.process(frame, dets)
            if len(added):
                parts.append(added)
        return Detections.merge(parts, EXTRA_FILLS) if len(parts) > 1 else dets

    def _followed(self) -> np.ndarray:
        """Boxes of the sites the rules follow for what the model itself sees (a parked
        vehicle, an umbrella), candidates and confirmed: the static stage leaves their pixels
        to them while the model's detection of them comes and goes."""
        sid = self.labels.static_id
        boxes = [s.box for _, rule in self.rules for s in rule.sites if s.class_id != sid]
        return np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)

    def process(self, frame: Frame, dets: Detections) -> list[IncidentEvent]:
        found = self.observe(frame, dets)
        if self.static is not None and self.static.events:
            self._scene_changed(self.static.events)
        ground = found.ground_points
        events: list[IncidentEvent] = []
        in_zone_cache: dict[str, np.ndarray] = {}
        for zone, rule in self.rules:
            if zone.id not in in_zone_cache:
                in_zone_cache[zone.id] = zone.contains(ground)
            in_zone = in_zone_cache[zone.id] & ~self._judged_elsewhere(found, zone, rule)
            confirmed = rule.update(frame, found, in_zone)
            self._settle(zone, rule, confirmed)
            events.extend(confirmed)
        self._note_people(frame, found, events)
        return events

    def _note_people(self, frame: Frame, found: Detections, events: list[IncidentEvent]) -> None:
        """Gives the shots taken on this sample (a new site's first shot, its dwell strip's
        thumbnails, a confirmed or cleared incident's) the sample's person boxes, for their
        de-identified renditions: in the shot's pixels (a thumbnail's are scaled)."""
        sites = [s for _, rule in self.rules for s in rule.sites]
        shots = [s.first_shot for s in sites] + [t for s in sites for t in s.strip.shots()]
        shots += [shot for e in events for shot in e.incident.evidence]
        taken = [s for s in shots if s.people is None and s.pts == frame.pts]
        if taken:
            people = found.boxes[np.isin(found.class_ids, self.person_ids)].copy()
            h, w = frame.image.shape[:2]
            for shot in taken:
                sh, sw = shot.image.shape[:2]
                scale = np.array([sw / w, sh / h, sw / w, sh / h], np.float32)
                shot.people = people if (sh, sw) == (h, w) else people * scale

    def _settle(self, zone: Zone, rule: SiteRule, events: list[IncidentEvent]) -> None:
        """A static object one rule confirmed is no candidate of another rule of the zone:
        one object, one verdict (a stall or garbage, not both)."""
        sid = self.labels.static_id
        if sid is None:
            return
        for event in events:
            if event.kind == "confirmed" and event.incident.class_name == STATIC_LABEL:
                for z, other in self.rules:
                    if z is zone and other is not rule and sid in other.spec.feeds:
                        other.drop_candidates_near(event.incident.box, sid)

    def _judged_elsewhere(self, found: Detections, zone: Zone, rule: SiteRule) -> np.ndarray:
        """Static objects at or beside a site another rule of the zone confirmed (a stall is
        not also garbage): that rule alone follows them."""
        sid = self.labels.static_id
        out = np.zeros(len(found), bool)
        if sid is None or sid not in rule.spec.feeds:
            return out
        taken = [
            box
            for z, other in self.rules
            if z is zone and other is not rule
            for box in other.confirmed_boxes(sid)
        ]
        static = np.flatnonzero(found.class_ids == sid)
        if taken and len(static):
            gap = rule.spec.params.group_gap or 0.0
            out[static[touching(np.stack(taken), found.boxes[static], gap).any(axis=0)]] = True
        return out

    def _scene_changed(self, events: list[SceneEvent]) -> None:
        """Static objects' dwell meant nothing across a scene change: their candidates go."""
        assert self.labels.static_id is not None
        dropped = sum(
            rule.drop_candidates(frozenset({self.labels.static_id})) for _, rule in self.rules
        )
        for event in events:
            log.info(
                "camera %s: scene change (%s) at %.1f s: %.0f%% of the picture changed, edge "
                "correlation %.2f; background re-seeded, %d static candidates dropped",
                self.camera_id,
                event.kind,
                event.pts,
                100 * event.share,
                event.correlation,
                dropped,
            )
        self.scene_events.extend(events)
        events.clear()

    def open_incidents(self) -> list[Incident]:
        """Incidents confirmed and not yet cleared (still present at the end of a file)."""
        return [i for _, rule in self.rules for i in rule.open_incidents()]

    def end(self) -> list[Incident]:
        """The open incidents at the end of a file, their dwell strips complete."""
        for _, rule in self.rules:
            rule.end_strips()
        return self.open_incidents()

    def snapshot(self, epoch_s: float, static: bool = True) -> PipelineState:
        """Every open site (candidates and confirmed incidents) and, if `static`, the static
        stage's backgrounds, with absolute times, for `restore` in a restarted worker."""
        sites: dict[str, list[dict]] = {}
        shots: dict[str, np.ndarray] = {}
        for zone, rule in self.rules:
            key = f"{zone.id}|{rule.spec.type}"
            sites[key] = []
            for n, site in enumerate(rule.sites):
                sites[key].append(site_state(site, epoch_s, self.labels.names))
                shots[f"{key}|{n}"] = site.first_shot.image
        stage = self.static if static else None
        return PipelineState(sites, shots, stage.snapshot(epoch_s) if stage is not None else None)

    def restore(self, state: PipelineState, epoch_s: float) -> int:
        """Continues the saved sites under this pipeline's epoch; sites of zones or types no
        longer configured are dropped. Returns how many sites were restored."""
        restored = 0
        for zone, rule in self.rules:
            key = f"{zone.id}|{rule.spec.type}"
            for n, saved in enumerate(state.sites.get(key, [])):
                site = restore_site(rule, saved, epoch_s, state.shots.get(f"{key}|{n}"))
                if site is not None:
                    rule.sites.append(site)
                    restored += 1
        if self.static is not None and state.static is not None:
            self.static.restore(state.static, epoch_s)
        return restored
