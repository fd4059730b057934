"""Dwell rules on sites: the heart of "one real incident, reported once".

A *site* is a place in a zone where a qualifying object stands still. Detections are
associated with sites by their boxes, not by tracker ids, so an id switch after an occlusion
neither resets a dwell timer nor opens a second incident. Everything runs on media time.

Life of a site:
  candidate  -- an object seen standing still; dropped if unseen for more than `occlusion_s`
  confirmed  -- stood still for `dwell_s`: the incident opens (evidence: first-seen and
                confirming frames); any qualifying object overlapping the site keeps it occupied
  cleared    -- empty for `clear_s`: the incident is closed; a new occupation is a new incident

Dwell and emptiness are measured in *observed* time: the step between two frames counts for
at most `max_gap_s`, so a camera outage neither confirms a dwell nor clears a site that
nobody could see. Reported times stay media times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from api.contract import IncidentType
from detector.geometry import box_iou, greedy_match
from detector.incidents import EvidenceShot, Incident, IncidentEvent, incident_id
from detector.stages import STATIONARY_AFTER_S, STAYS_AFTER_S, SURE_SCORE
from detector.strip import DwellStrip
from detector.types import Detections, Frame
from detector.zones import Zone


class RuleParams(BaseModel):
    """Timing and tolerance of one incident type's rule."""

    model_config = ConfigDict(extra="forbid")

    dwell_s: float = Field(gt=0, description="how long an object must stay before it counts")
    clear_s: float = Field(gt=0, description="how long a site must be empty to clear")
    occlusion_s: float = Field(
        default=10.0, ge=0, description="gap in sightings tolerated before confirmation"
    )
    max_move: float = Field(
        default=0.25,
        gt=0,
        le=2,
        description="drift allowed while dwelling, as a fraction of the object's size",
    )
    min_confidence: float = Field(
        default=0.3, ge=0, le=1, description="detections scoring below this do not count"
    )
    attendant_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="stand-in rules: share of sightings with a person staying beside the "
        "object at or above which it is attended (a stall), below which unattended (garbage)",
    )
    group_gap: float | None = Field(
        default=None,
        ge=0,
        le=2,
        description="objects closer than this (a share of the site's size) to a site belong to "
        "it and open no site of their own (a stall's umbrella, table and goods); unset: each "
        "object is its own site",
    )
    stand_in: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="the static-object stand-in (garbage, street_stall): auto runs it when "
        "the model has no class for the type, on runs it beside the model's classes, off never",
    )


DEFAULT_RULES: dict[IncidentType, RuleParams] = {
    IncidentType.illegal_parking: RuleParams(dwell_s=120, clear_s=30, occlusion_s=10),
    IncidentType.street_stall: RuleParams(dwell_s=300, clear_s=60, occlusion_s=20, group_gap=0.5),
    IncidentType.garbage: RuleParams(dwell_s=600, clear_s=120, occlusion_s=30, group_gap=0.5),
}

# A site counts as still occupied by any qualifying box overlapping it this much.
OCCUPANCY_IOU = 0.3
# Frames further apart than this count as this far apart: the rest was not observed.
MAX_GAP_S = 10.0
# Share of a confirmed site that people or vehicles must cover for it to count as occluded.
OCCLUDED_SHARE = 0.3
MAX_CLEARS = 16  # recent clearings remembered per rule
# Share of a weak detection's box on an object beyond which it is the object, not beside it.
ON_OBJECT = 0.5
# Sightings a stand-in site needs before the people beside it decide what it is.
MIN_VERDICT_SIGHTINGS = 4
# How a sighting shapes its site: `whole` is the object as seen now (its box becomes the
# site's), `part` some of it or something beside it (a stall's table, what is left of goods
# someone stands in front of: it widens the site's box, never shrinks it), `hidden` what is
# seen only behind someone who stays (it keeps the site seen, never moves it: a vendor
# beside their goods is not where the goods are).
Part = Literal["whole", "part", "hidden"]
# A confirmed site grows to at most this many times its size when confirmed (more goods set
# out, the rest of a heap seen): what would grow it more is something else beside it.
SWELL = 2.0
EPS = 1e-6  # observed time is a float sum: compare thresholds with a little slack


@dataclass(slots=True)
class _Site:
    anchor: np.ndarray  # box where the object settled: drift is measured from here
    box: np.ndarray
    first_seen: float
    last_seen: float
    first_shot: EvidenceShot
    strip: DwellStrip
    dwelt_s: float = 0.0  # observed time since the site was first seen
    # Area of the static region whose first difference dates the site (inf: dated by its
    # own sighting): a candidate's date follows a fuller region of it, see `SiteRule._redate`.
    dated_area: float = math.inf
    unseen_s: float = 0.0  # observed time since the site was last seen
    confirmed_area: float = math.inf  # its box's area when confirmed
    class_scores: dict[int, float] = field(default_factory=dict)
    score_sum: float = 0.0
    sightings: int = 0
    attended: int = 0
    incident: Incident | None = None

    @property
    def class_id(self) -> int:
        """The class seen most (by summed score): what the site is reported as."""
        return max(self.class_scores, key=self.class_scores.__getitem__)

    def swells(self, box: np.ndarray) -> bool:
        """Whether taking in `box` would make a confirmed site more than `SWELL` times its
        size when confirmed: not more of the object, something else beside it."""
        return _area(_union(self.box, box)) > SWELL * self.confirmed_area

    def absorb(self, other: _Site) -> None:
        """Takes in another site of the same object: its box, and its earlier date."""
        self.box = _union(self.box, other.box)
        self.anchor = _union(self.anchor, other.anchor)
        if other.first_seen < self.first_seen and self.incident is None:
            self.dwelt_s += self.first_seen - other.first_seen
            self.first_seen = other.first_seen

    def observe(
        self,
        box: np.ndarray,
        score: float,
        class_id: int,
        pts: float,
        attended: bool,
        part: Part = "whole",
    ):
        if part == "part" and self.swells(box):
            # The confirmed object joined with something beside it (a bus parked next to a
            # heap): it keeps the site seen, never swells it.
            part = "hidden"
        if part == "hidden":
            box = self.box
        elif part == "part":
            box = _union(self.box, box)
        if self.sightings and self.last_seen == pts:
            # A second part of the site in the same frame (a stall's table beside its
            # umbrella): the site is what they cover together, seen once.
            self.box = _union(self.box, box)
            return
        self.box = box
        self.last_seen = pts
        self.unseen_s = 0.0
        self.sightings += 1
        self.attended += attended
        self.score_sum += score
        self.class_scores[class_id] = self.class_scores.get(class_id, 0.0) + score


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One incident type's rule as applied to one camera's labels: which class ids feed it.

    `class_ids` raise the incident on their own (a trained model's classes); stand-ins need a
    verdict from the people staying beside them over the dwell: `attended_ids` only when
    attended (an umbrella is a stall when someone stays with it), `unattended_ids` only when
    not (a static object nobody stays with is garbage, one a vendor stays with is a stall).
    """

    type: str
    params: RuleParams
    class_ids: frozenset[int] = frozenset()
    attended_ids: frozenset[int] = frozenset()
    unattended_ids: frozenset[int] = frozenset()
    attendant_ids: frozenset[int] = frozenset()  # the people who attend
    # Classes that can stand in front of a site (people, vehicles): a confirmed site they
    # cover is occluded, not empty, and its clearing waits.
    occluder_ids: frozenset[int] = frozenset()

    @property
    def feeds(self) -> frozenset[int]:
        return self.class_ids | self.attended_ids | self.unattended_ids


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The box around two boxes."""
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


def _stationary(anchors: np.ndarray, boxes: np.ndarray, max_move: float) -> np.ndarray:
    """IoU of boxes with site anchors, zero where the centre drifted more than allowed."""
    iou = box_iou(anchors, boxes)
    size = np.maximum(anchors[:, 2:] - anchors[:, :2], 1.0)
    ca = (anchors[:, :2] + anchors[:, 2:]) * 0.5
    cb = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    drift = np.hypot(*np.moveaxis((cb[None] - ca[:, None]) / size[:, None], 2, 0))
    return np.where(drift <= max_move, iou, 0.0)


def _attended(
    boxes: np.ndarray,
    attendants: np.ndarray,
    stay_s: np.ndarray,
    sure: np.ndarray,
    need_s: np.ndarray,
) -> np.ndarray:
    """Whether someone stays beside each box: a ground point within about twice the wider
    of the two (object, person) to either side, and level with the object's base, of someone
    who has stayed (`stay_s`, per attendant) the box's `need_s`. A weak detection (not
    `sure`) lying mostly on the object is the object (goods the model half takes for a
    person), not someone beside it; a sure one may (a vendor sitting behind a cart)."""
    if len(attendants) == 0:
        return np.zeros(len(boxes), bool)
    w = boxes[:, 2:3] - boxes[:, 0:1]
    h = boxes[:, 3:4] - boxes[:, 1:2]
    aw = (attendants[:, 2] - attendants[:, 0])[None]
    reach = 2 * np.maximum(w, aw)
    gx = (attendants[:, 0] + attendants[:, 2])[None] * 0.5
    gy = attendants[:, 3][None]
    near_x = (gx >= boxes[:, 0:1] - reach) & (gx <= boxes[:, 2:3] + reach)
    near_y = (gy >= boxes[:, 1:2] - h) & (gy <= boxes[:, 3:4] + np.maximum(h, aw))
    stayed = stay_s[None] >= need_s[:, None]
    ix = np.minimum(boxes[:, 2:3], attendants[:, 2][None]) - np.maximum(
        boxes[:, 0:1], attendants[:, 0][None]
    )
    iy = np.minimum(boxes[:, 3:4], attendants[:, 3][None]) - np.maximum(
        boxes[:, 1:2], attendants[:, 1][None]
    )
    inside = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area = np.maximum(aw * (attendants[:, 3] - attendants[:, 1])[None], 1.0)
    apart = sure[None] | (inside < ON_OBJECT * area)
    return np.any(near_x & near_y & stayed & apart, axis=1)


def touching(sites: np.ndarray, boxes: np.ndarray, gap: float) -> np.ndarray:
    """Sites x boxes: whether each box touches each site grown by `gap` times its size."""
    size = sites[:, 2:] - sites[:, :2]
    grown = np.concatenate([sites[:, :2] - gap * size, sites[:, 2:] + gap * size], axis=1)
    ix = np.minimum(grown[:, None, 2], boxes[None, :, 2]) >= np.maximum(
        grown[:, None, 0], boxes[None, :, 0]
    )
    iy = np.minimum(grown[:, None, 3], boxes[None, :, 3]) >= np.maximum(
        grown[:, None, 1], boxes[None, :, 1]
    )
    return ix & iy


class SiteRule:
    """One incident type in one zone of one camera."""

    def __init__(
        self,
        camera_id: str,
        zone: Zone,
        spec: RuleSpec,
        class_names: list[str],
        epoch: datetime,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        self.camera_id = camera_id
        self.zone = zone
        self.spec = spec
        self.class_names = class_names
        self.epoch = epoch
        self.max_gap_s = max_gap_s
        self.sites: list[_Site] = []
        self._last_pts: float | None = None
        self._feeds = self._lookup(spec.feeds)
        self._attendants = self._lookup(spec.attendant_ids)
        self._occluders = self._lookup(spec.occluder_ids)
        self._clears: list[tuple[np.ndarray, float]] = []  # recent clearings: box, pts

    def _lookup(self, ids: frozenset[int]) -> np.ndarray:
        table = np.zeros(max(len(self.class_names), 1), bool)
        table[list(ids)] = True
        return table

    def update(self, frame: Frame, dets: Detections, in_zone: np.ndarray) -> list[IncidentEvent]:
        p = self.spec.params
        pts = frame.pts
        last, self._last_pts = self._last_pts, pts
        step = 0.0 if last is None else min(max(pts - last, 0.0), self.max_gap_s)
        for site in self.sites:
            site.dwelt_s += step
            site.unseen_s += step
        qualifies = self._feeds[dets.class_ids] & (dets.scores >= p.min_confidence) & in_zone
        q = np.flatnonzero(qualifies)
        boxes = dets.boxes[q]
        since = dets.extra("since", np.nan)[q]
        attended = np.zeros(len(q), bool)
        if self.spec.attendant_ids and len(q):
            # Only someone who stays attends (a vendor standing, sitting, moving about their
            # goods), never the passers-by, nor a weak "person" that is the goods themselves:
            # there since the object came, or `STAYS_AFTER_S` for an object there longer (a
            # vendor setting out goods attends them from the start; someone pausing beside an
            # old heap does not).
            need = np.clip(pts - since, STATIONARY_AFTER_S, STAYS_AFTER_S)
            need = np.where(np.isfinite(need), need, STAYS_AFTER_S)
            people = self._attendants[dets.class_ids]
            stay = dets.extra("stay_s", 0.0)[people]
            sure = dets.scores[people] >= SURE_SCORE
            attended = _attended(boxes, dets.boxes[people], stay, sure, need)

        # Before any use of `since`: a site continued or opened now is dated no earlier than a
        # clearing there.
        self._clamp_to_clears(boxes, since)

        occluded = dets.extra("occluded", False)[q]
        if p.group_gap is not None and occluded.any():
            self._join_bridged(boxes[occluded], p.group_gap)

        unmatched = set(range(len(q)))
        confirmed = [s for s in self.sites if s.incident is not None]
        candidates = [s for s in self.sites if s.incident is None]

        # Confirmed sites stay occupied by anything qualifying that overlaps them, and keep
        # all of what was seen of them (people passing in front cut goods into parts); what
        # is seen only behind someone standing in front keeps a confirmed site, no other, and
        # does not move it.
        if confirmed and len(q):
            iou = box_iou(np.stack([s.box for s in confirmed]), boxes)
            for si, di in greedy_match(iou, OCCUPANCY_IOU):
                part: Part = "hidden" if occluded[di] else "part"
                self._observe(confirmed[si], q, di, dets, pts, attended, part)
                unmatched.discard(di)
            # Other overlapping boxes belong to the same site: never a second incident there.
            unmatched -= set(np.flatnonzero(iou.max(axis=0) >= OCCUPANCY_IOU).tolist())
        unmatched -= set(np.flatnonzero(occluded).tolist())

        # Candidates only continue with an object that has not moved away from its anchor;
        # the oldest such candidate wins, so box jitter never restarts a dwell timer.
        rest = sorted(unmatched)
        if candidates and rest:
            anchors = np.stack([s.anchor for s in candidates])
            still = _stationary(anchors, boxes[rest], p.max_move) > 0
            age = np.array([s.dwelt_s for s in candidates])
            affinity = np.where(still, 1.0 + age[:, None], 0.0)
            for si, ri in greedy_match(affinity, 1.0):
                self._observe(candidates[si], q, rest[ri], dets, pts, attended)
                self._redate(candidates[si], boxes[rest[ri]], float(since[rest[ri]]))
                unmatched.discard(rest[ri])

        # What lies beside a site (a stall's table next to its umbrella, the rest of a heap) is
        # part of it: it keeps the site seen and widens its box, and opens no site of its own.
        # Beside a candidate is beside where it settled: specks each a little further along (a
        # cloud's shadow edge crossing the grass) do not walk a candidate across the frame.
        rest = sorted(unmatched)
        if p.group_gap is not None and self.sites and rest:
            places = [s.box if s.incident is not None else s.anchor for s in self.sites]
            near = touching(np.stack(places), boxes[rest], p.group_gap)
            for site_index, ri in zip(*np.nonzero(near), strict=True):
                if rest[ri] in unmatched:
                    site = self.sites[site_index]
                    self._observe(site, q, rest[ri], dets, pts, attended, "part")
                    if site.incident is None:
                        # A candidate opened on a speck beside the object (a blocky encoder's
                        # smear, a leaf) is dated by the fuller object, as when it continues.
                        self._redate(site, boxes[rest[ri]], float(since[rest[ri]]))
                    unmatched.discard(rest[ri])

        self._hold_occluded(confirmed, dets, pts, step)

        for di in sorted(unmatched):
            box = boxes[di].copy()
            # A static object differed from the background before it counted as static:
            # its dwell runs from then.
            first = float(since[di]) if np.isfinite(since[di]) else pts
            site = _Site(
                anchor=box,
                box=box,
                first_seen=first,
                last_seen=pts,
                first_shot=EvidenceShot("first_seen", pts, frame.image, box),
                strip=DwellStrip(p.dwell_s),
                dwelt_s=pts - first,
                dated_area=_area(box) if np.isfinite(since[di]) else math.inf,
            )
            self._observe(site, q, di, dets, pts, attended)
            self.sites.append(site)

        return self._advance(frame)

    def _join_bridged(self, hidden: np.ndarray, gap: float) -> None:
        """Parts of one object that someone stands in front of (a cart whose vendor hides its
        middle) are seen apart, each a site; what is seen behind that person touches both.
        Sites one hidden region touches are one: the unconfirmed ones join the oldest, which
        takes in their box. Two confirmed sites stay two (each is a case already)."""
        if len(self.sites) < 2:
            return
        near = touching(np.stack([s.box for s in self.sites]), hidden, gap)
        # Each site's keeper: itself, or the site it joined.
        into = list(range(len(self.sites)))
        for bridge in near.T:
            held = sorted({into[i] for i in np.flatnonzero(bridge)})
            if len(held) < 2:
                continue
            # The oldest keeps the site; a confirmed one always does (it is a case already).
            keep = max(
                held, key=lambda i: (self.sites[i].incident is not None, self.sites[i].dwelt_s)
            )
            keeper = self.sites[keep]
            for i in held:
                other = self.sites[i]
                if i == keep or other.incident is not None:
                    continue
                if keeper.swells(other.box):
                    continue  # something else beside a case already made
                keeper.absorb(other)
                into = [keep if j == i else j for j in into]
        self.sites = [s for i, s in enumerate(self.sites) if into[i] == i]

    @staticmethod
    def _redate(site: _Site, box: np.ndarray, since: float) -> None:
        """A candidate's first sight may be a partial region of its object, with pixels a
        passer-by or the wind stirred just before it came: a fuller region of the same object
        dates it better. Its first-seen (and dwell) follow that region's date; a confirmed
        incident's dates never move."""
        area = _area(box)
        if not np.isfinite(since) or area <= site.dated_area:
            return
        site.dwelt_s += site.first_seen - since
        site.first_seen = since
        site.dated_area = area

    def _hold_occluded(self, confirmed: list[_Site], dets: Detections, pts: float, step: float):
        """A confirmed site not seen now but covered by someone standing in front (or a
        parked bus) is not seen empty: its emptiness timer waits. Passers-by do not hold it."""
        unseen = [s for s in confirmed if s.last_seen != pts and s.unseen_s > 0]
        covering = self._occluders[dets.class_ids] & dets.extra("stationary", False)
        if not unseen or not covering.any():
            return
        sites = np.stack([s.box for s in unseen])
        others = dets.boxes[covering]
        ix = np.minimum(sites[:, None, 2], others[None, :, 2]) - np.maximum(
            sites[:, None, 0], others[None, :, 0]
        )
        iy = np.minimum(sites[:, None, 3], others[None, :, 3]) - np.maximum(
            sites[:, None, 1], others[None, :, 1]
        )
        inter = (np.clip(ix, 0, None) * np.clip(iy, 0, None)).sum(axis=1)
        area = np.maximum((sites[:, 2] - sites[:, 0]) * (sites[:, 3] - sites[:, 1]), 1.0)
        for site, covered in zip(unseen, inter / area >= OCCLUDED_SHARE, strict=True):
            if covered:
                site.unseen_s = max(site.unseen_s - step, 0.0)

    def _clamp_to_clears(self, boxes: np.ndarray, since: np.ndarray) -> None:
        """A new site where one was just cleared began no earlier than that clearing: a static
        object's first difference may predate it."""
        if not self._clears or not len(boxes):
            return
        cleared = np.stack([box for box, _ in self._clears])
        at = np.array([t for _, t in self._clears])
        overlap = box_iou(cleared, boxes) >= OCCUPANCY_IOU
        latest = np.where(overlap, at[:, None], -np.inf).max(axis=0)
        np.maximum(since, latest, out=since, where=np.isfinite(since))

    def drop_candidates(self, class_ids: frozenset[int]) -> int:
        """Forgets the unconfirmed sites of these classes (a scene change made their dwell
        meaningless); returns how many."""
        before = len(self.sites)
        self.sites = [
            s for s in self.sites if s.incident is not None or s.class_id not in class_ids
        ]
        return before - len(self.sites)

    def _verdict(self, site: _Site) -> bool:
        """Whether the people beside a stand-in site allow it to be this type."""
        class_id = site.class_id
        stand_in = class_id in self.spec.attended_ids | self.spec.unattended_ids
        if stand_in and site.sightings < MIN_VERDICT_SIGHTINGS:
            return False  # a dwell credited from before the site opened: look first
        attended = site.attended >= self.spec.params.attendant_fraction * site.sightings
        if class_id in self.spec.attended_ids:
            return attended
        if class_id in self.spec.unattended_ids:
            return not attended
        return True

    def _observe(
        self,
        site: _Site,
        q,
        di: int,
        dets: Detections,
        pts: float,
        attended,
        part: Part = "whole",
    ) -> None:
        det = int(q[di])
        site.observe(
            dets.boxes[det].copy(),
            float(dets.scores[det]),
            int(dets.class_ids[det]),
            pts,
            bool(attended[di]),
            part,
        )

    def _advance(self, frame: Frame) -> list[IncidentEvent]:
        p = self.spec.params
        pts = frame.pts
        events: list[IncidentEvent] = []
        kept: list[_Site] = []
        for site in self.sites:
            incident = site.incident
            seen = site.last_seen == pts
            if incident is None:
                if site.unseen_s > p.occlusion_s + EPS:
                    continue  # gone before it dwelt long enough
                if seen:
                    site.strip.offer(frame, site.box, site.dwelt_s)
                if site.unseen_s == 0.0 and site.dwelt_s >= p.dwell_s - EPS and self._verdict(site):
                    events.append(IncidentEvent("confirmed", self._open(site, frame)))
            else:
                if seen:
                    site.strip.offer_after(frame, site.box, site.dwelt_s)
                incident.last_seen = site.last_seen
                incident.box = site.box
                incident.confidence, incident.class_name = self._summary(site)
                if site.unseen_s >= p.clear_s - EPS:
                    incident.cleared_at = pts
                    self._clears = [*self._clears[-(MAX_CLEARS - 1) :], (site.box, pts)]
                    incident.evidence += site.strip.take_after()
                    incident.evidence.append(EvidenceShot("cleared", pts, frame.image, site.box))
                    events.append(IncidentEvent("cleared", incident))
                    continue
            kept.append(site)
        self.sites = kept
        return events

    def _summary(self, site: _Site) -> tuple[float, str]:
        return round(site.score_sum / site.sightings, 4), self.class_names[site.class_id]

    def _open(self, site: _Site, frame: Frame) -> Incident:
        confidence, class_name = self._summary(site)
        site.confirmed_area = _area(site.box)
        first_seen = self.epoch + timedelta(seconds=site.first_seen)
        id_ = incident_id(self.camera_id, self.zone.id, self.spec.type, first_seen)
        if id_ in {s.incident.id for s in self.sites if s.incident is not None}:
            # Another site first seen in the same sample: the site's place tells them apart.
            id_ = incident_id(self.camera_id, self.zone.id, self.spec.type, first_seen, site.anchor)
        site.incident = Incident(
            id=id_,
            type=self.spec.type,
            camera_id=self.camera_id,
            zone_id=self.zone.id,
            box=site.box,
            class_name=class_name,
            confidence=confidence,
            first_seen=site.first_seen,
            confirmed_at=frame.pts,
            last_seen=site.last_seen,
            evidence=[
                site.first_shot,
                EvidenceShot("confirmed", frame.pts, frame.image, site.box),
                *site.strip.confirm(site.dwelt_s),
            ],
        )
        return site.incident

    def open_incidents(self) -> list[Incident]:
        return [s.incident for s in self.sites if s.incident is not None]

    def end_strips(self) -> None:
        """The input ended with incidents open: their strips' later samples join their
        evidence (`score`, at the end of a file)."""
        for s in self.sites:
            if s.incident is not None:
                s.incident.evidence += s.strip.take_after()

    def drop_candidates_near(self, box: np.ndarray, class_id: int) -> None:
        """Forgets unconfirmed sites of `class_id` beside `box` (another rule took it)."""
        gap = self.spec.params.group_gap or 0.0
        near = (
            touching(box[None], np.stack([s.box for s in self.sites]), gap)[0] if self.sites else []
        )
        self.sites = [
            s
            for s, n in zip(self.sites, near, strict=True)
            if s.incident is not None or s.class_id != class_id or not n
        ]

    def confirmed_boxes(self, class_id: int) -> list[np.ndarray]:
        """Boxes of the confirmed sites that are mostly `class_id` (a static object)."""
        return [s.box for s in self.sites if s.incident is not None and s.class_id == class_id]


# -- persistence: a worker's open sites outlive the process -------------------------------
# A site is saved with absolute times (unix seconds), so a restarted worker, whose media
# time starts again at zero, continues each site where it stood: the same incident id, its
# dwell and emptiness timers as observed (the downtime was not observed, so it counts for
# nothing), its evidence references with the caller.


def site_state(site: _Site, epoch_s: float, class_names: list[str]) -> dict:
    """One site as JSON-ready data, classes by name (a reload may change the model); its
    first-seen frame travels beside it."""
    state: dict = {
        "anchor": site.anchor.tolist(),
        "box": site.box.tolist(),
        "first_seen": epoch_s + site.first_seen,
        "last_seen": epoch_s + site.last_seen,
        "first_shot_at": epoch_s + site.first_shot.pts,
        "first_shot_people": (
            None if site.first_shot.people is None else site.first_shot.people.tolist()
        ),
        "dwelt_s": site.dwelt_s,
        "unseen_s": site.unseen_s,
        "class_scores": {class_names[k]: v for k, v in site.class_scores.items()},
        "score_sum": site.score_sum,
        "sightings": site.sightings,
        "attended": site.attended,
        "incident": None,
    }
    if site.incident is not None:
        i = site.incident
        state["incident"] = {
            "id": i.id,
            "class_name": i.class_name,
            "confidence": i.confidence,
            "confirmed_at": epoch_s + i.confirmed_at,
        }
    return state


def restore_site(
    rule: SiteRule, state: dict, epoch_s: float, first_shot: np.ndarray | None
) -> _Site | None:
    """The saved site under this rule, or None if none of its classes feed the rule now."""
    index = {name: i for i, name in enumerate(rule.class_names)}
    scores = {
        index[name]: v
        for name, v in state["class_scores"].items()
        if name in index and index[name] in rule.spec.feeds
    }
    if not scores:
        return None
    box = np.asarray(state["box"], np.float32)
    image = first_shot if first_shot is not None else np.zeros((1, 1, 3), np.uint8)
    people = state.get("first_shot_people")  # absent from state saved before renditions
    site = _Site(
        anchor=np.asarray(state["anchor"], np.float32),
        box=box,
        first_seen=state["first_seen"] - epoch_s,
        last_seen=state["last_seen"] - epoch_s,
        first_shot=EvidenceShot(
            "first_seen",
            state["first_shot_at"] - epoch_s,
            image,
            box,
            None if people is None else np.asarray(people, np.float32).reshape(-1, 4),
        ),
        strip=DwellStrip(rule.spec.params.dwell_s),
        dwelt_s=state["dwelt_s"],
        unseen_s=state["unseen_s"],
        class_scores=scores,
        score_sum=state["score_sum"],
        sightings=state["sightings"],
        attended=state["attended"],
    )
    if (i := state.get("incident")) is not None:
        site.incident = Incident(
            id=i["id"],
            type=rule.spec.type,
            camera_id=rule.camera_id,
            zone_id=rule.zone.id,
            box=box,
            class_name=i["class_name"],
            confidence=i["confidence"],
            first_seen=site.first_seen,
            confirmed_at=i["confirmed_at"] - epoch_s,
            last_seen=site.last_seen,
        )
        # Its strip's first part went with its report; the rest starts again from here.
        site.strip.confirm(site.dwelt_s)
        site.confirmed_area = _area(box)
    return site
