"""Camera health: events a live source reports, and the frozen-picture detector."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

HealthKind = Literal[
    "connected",
    "disconnected",
    "reconnecting",
    "frozen",
    "unfrozen",
    "dead",
    "decode_error",
    "scene_changed",  # the picture's structure changed: moved, or a PTZ preset; check zones
]
# Kinds that mean the camera is not delivering a usable picture, or not the one its zones
# were drawn on: logged as warnings.
TROUBLE: frozenset[HealthKind] = frozenset(
    {"disconnected", "reconnecting", "frozen", "dead", "decode_error", "scene_changed"}
)


@dataclass(frozen=True, slots=True)
class HealthEvent:
    camera_id: str
    kind: HealthKind
    detail: str = ""
    at: float = field(default_factory=time.time)  # unix seconds


HealthCallback = Callable[[HealthEvent], None]


def report(event: HealthEvent, callback: HealthCallback | None) -> None:
    """Log one clear line and hand the event on; a faulty callback never stops the camera."""
    level = logging.WARNING if event.kind in TROUBLE else logging.INFO
    detail = f" ({event.detail})" if event.detail else ""
    log.log(level, "camera %s: %s%s", event.camera_id, event.kind, detail)
    if callback is None:
        return
    try:
        callback(event)
    except Exception:
        log.exception("camera %s: health callback failed on %s", event.camera_id, event.kind)


class FreezeDetector:
    """Notices a picture that has not changed for `after_s` seconds.

    Compares tiny grey signatures (a few hundred pixels) rather than frames: cheap enough for
    every sampled frame, and averaging over blocks hides codec noise on a still picture,
    while anything moving changes some block by far more than `tolerance` grey levels.
    """

    def __init__(self, after_s: float, tolerance: float = 6.0) -> None:
        self.after_s = after_s
        self.tolerance = tolerance
        self.reference: np.ndarray | None = None
        self.still_since = 0.0
        self.frozen = False

    def update(self, signature: np.ndarray, now: float) -> bool | None:
        """Feed one signature; returns True when the picture froze, False when it thawed."""
        if self.reference is None or self.reference.shape != signature.shape:
            self.reference, self.still_since = signature, now
            return None
        changed = np.abs(signature.astype(np.int16) - self.reference).max() > self.tolerance
        if changed:
            self.reference, self.still_since = signature, now
            if self.frozen:
                self.frozen = False
                return False
        elif not self.frozen and now - self.still_since >= self.after_s:
            self.frozen = True
            return True
        return None

    def reset(self) -> None:
        """Forget the reference (a reconnect may show a different picture); keeps `frozen`."""
        self.reference = None
