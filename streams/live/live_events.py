"""What a live camera says happened, and the bus that carries it to the worker's sinks.

A live camera (streams/live/live_camera.py) publishes these events; the sinks
(streams/live/sinks.py) subscribe to the kinds they act on, as Frigate's camera state calls
the callbacks registered for its object events. Camera health
(`streams.sources.health.HealthEvent`, from a source's decode thread or a camera that moved)
travels on the same bus as it is.

A sink subscribed as `durable` (the outbox) hears an event first, and its failure is the
publisher's: the event did not happen and the other sinks never hear it, so the camera keeps
it and publishes it again. Every other sink only listens: one that raises is logged and the
rest still hear the event.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from api.contract import CaseReport, Observation
from detector.incidents import Incident
from detector.types import Frame
from streams.camera.site_store import CameraState
from streams.config import CameraConfig

log = logging.getLogger(__name__)

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class SampleSettled:
    """A sample went through the camera's rules, and its incidents were reported."""

    camera_id: str
    frame: Frame
    now: float  # wall time its batch settled


@dataclass(frozen=True, slots=True)
class IncidentConfirmed:
    """An incident confirmed (or released from being held): `case` is to be reported."""

    camera_id: str
    incident: Incident
    case: CaseReport


@dataclass(frozen=True, slots=True)
class IncidentUpdated:
    """An open incident's latest state (now and then, and as its camera stops)."""

    camera_id: str
    incident_id: str
    observation: Observation


@dataclass(frozen=True, slots=True)
class IncidentCleared:
    """A reported incident's site is empty: its last observation, with `cleared_at`."""

    camera_id: str
    incident: Incident
    observation: Observation


SaveWhy = Literal["incident", "stop", "changed"]


@dataclass(frozen=True, slots=True)
class InheritedReports:
    """What a fleet camera's previous worker queued and never delivered, found as the camera
    is taken over (streams.camera.reconcile): its reports (without their evidence, which
    stayed on that worker's disk) and its clearings, by incident id."""

    camera_id: str
    reports: list[CaseReport]
    clearings: list[tuple[str, Observation]]


@dataclass(frozen=True, slots=True)
class SitesChanged:
    """The camera's state to save: at once after an incident event (the state on disk then
    explains the outbox entry) or as it stops; else (`changed`, now and then while it runs)
    whenever the writer gets to it."""

    camera_id: str
    state: CameraState
    why: SaveWhy

    @property
    def at_once(self) -> bool:
        return self.why != "changed"


@dataclass(frozen=True, slots=True)
class SitesDropped:
    """The camera was removed from the configuration: its saved sites describe nothing."""

    camera_id: str


@dataclass(frozen=True, slots=True)
class CameraStopped:
    """The camera stopped, its incidents' latest state queued. `left`: it runs here no more
    (removed, or moved to another fleet worker), so whatever was kept for it goes; otherwise
    it is restarting with new stream settings or the worker is stopping."""

    camera_id: str
    left: bool


@dataclass(frozen=True, slots=True)
class BatchSettled:
    """Every sample of one inference batch was settled (the shadow model judges them at
    once): each with its camera, and the live runtime's epoch (None if never started)."""

    samples: list[tuple[CameraConfig, Frame, datetime | None]]


class Bus:
    """Delivers each event to the sinks subscribed to its type, in subscription order,
    durable ones first. Subscribe before any thread publishes: delivery reads the
    subscriptions without a lock."""

    def __init__(self) -> None:
        self._durable: dict[type, list[Callable[[Any], None]]] = defaultdict(list)
        self._listeners: dict[type, list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, kind: type[E], handler: Callable[[E], None], durable: bool = False) -> None:
        (self._durable if durable else self._listeners)[kind].append(handler)

    def publish(self, event: object) -> None:
        """Raises what a durable sink raises (nobody else heard the event then); a
        listener's failure is logged."""
        kind = type(event)
        for handler in self._durable.get(kind, ()):
            handler(event)
        for handler in self._listeners.get(kind, ()):
            try:
                handler(event)
            except Exception:
                log.exception(
                    "camera %s: sink %s failed on %s",
                    getattr(event, "camera_id", "-"),
                    getattr(handler, "__qualname__", handler),
                    kind.__name__,
                )
