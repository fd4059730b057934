"""Incident state: what the rules report, in media time, before it becomes a case."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

# `plate`: the rectified plate crop of a parking incident's best plate read (detector.plates).
EvidenceKind = Literal["first_seen", "confirmed", "cleared", "plate", "dwell"]


@dataclass(slots=True)
class EvidenceShot:
    """A frame kept as evidence (for `dwell`, a thumbnail of it: detector/strip.py), with
    the box to draw on it in the image's pixels (None: nothing to draw, the image is the
    object itself, as a plate crop is). Encoded only when reported.

    `people`: the person boxes (N x 4 xyxy) the model found on that frame, whose heads its
    de-identified rendition obscures; the pipeline sets them on the sample the shot is taken.
    None when unknown (a site restored from state saved without them): no rendition then."""

    kind: EvidenceKind
    pts: float
    image: np.ndarray
    box: np.ndarray | None
    people: np.ndarray | None = None


@dataclass(slots=True)
class Incident:
    id: str
    type: str
    camera_id: str
    zone_id: str
    box: np.ndarray  # site box, xyxy pixels
    class_name: str
    confidence: float
    first_seen: float  # media seconds
    confirmed_at: float
    last_seen: float
    cleared_at: float | None = None
    evidence: list[EvidenceShot] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    kind: Literal["confirmed", "cleared"]
    incident: Incident


def incident_id(
    camera_id: str, zone_id: str, type_: str, first_seen: datetime, at: np.ndarray | None = None
) -> str:
    """Deterministic id: the same input video (or the same live moment) gives the same id.
    `at`: the site's settled box, told only when another site of the zone and type was first
    seen at the same moment (two cars parking in one sample): each gets its own id."""
    # To the nearest millisecond: a time restored from saved state may differ in the last bits.
    exact = first_seen + timedelta(microseconds=500)
    key = f"{camera_id}|{zone_id}|{type_}|{exact.isoformat(timespec='milliseconds')}"
    if at is not None:
        key += "|" + ",".join(str(round(float(v))) for v in at)
    return "inc-" + hashlib.sha256(key.encode()).hexdigest()[:24]
