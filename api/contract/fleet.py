"""The fleet's wire contract and its assignment rule, free of server imports (workers use it).

Each camera goes to one live worker by rendezvous hashing: the live worker with the highest
hash of (camera, worker) owns it, so a lost worker's cameras spread over the others and a
returning one gets exactly its own back, nobody else's moving. A camera is handed to its
owner only once no other live worker still runs it: the previous holder sees in its
heartbeat that the camera is no longer its own, hands its state over and stops it, and the
next heartbeat of the owner then receives it. A lost worker (no heartbeat for the TTL) runs
nothing as far as assignment goes, and stops its cameras itself after as long without an
answer, so no camera is watched twice for longer than that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.contract.cases import CaseReport, Id, storable

MAX_DEFINITION_CHARS = 200_000  # zones of a busy junction fit many times over


class Heartbeat(BaseModel):
    """A worker's `POST /v1/fleet/workers/{id}/heartbeat`: what it runs now."""

    model_config = ConfigDict(extra="forbid")

    running: list[Id] = Field(default_factory=list, max_length=10_000)
    leaving: bool = Field(False, description="A clean stop: its cameras move at once")


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """What every database stores as JSON: no NaN or infinities, no control characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise ValueError("NaN and infinities are not JSON") from None
    except RecursionError:
        raise ValueError("nested too deep") from None
    if len(text) > MAX_DEFINITION_CHARS:
        raise ValueError(f"over {MAX_DEFINITION_CHARS} characters")
    _check_strings(value)
    return value


def _check_strings(value: object) -> None:
    """Every key and string, however deep, is storable (the dump escapes what is not)."""
    if isinstance(value, str):
        storable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


class FleetCameraIn(BaseModel):
    """A camera definition as the worker's config takes it (`id`, `source`, `zones`, ...);
    the API checks its id and keeps the rest for the workers, which validate it."""

    model_config = ConfigDict(extra="forbid")

    definition: Annotated[dict[str, Any], AfterValidator(_storable_json)]


class AssignedCamera(BaseModel):
    camera_id: str
    definition: dict[str, Any]
    updated_at: datetime


class Assignment(BaseModel):
    """The heartbeat's answer: the cameras this worker runs now (all of them: one it runs
    that is not listed it hands over and stops)."""

    cameras: list[AssignedCamera]
    live_workers: int
    ttl_s: float = Field(description="Without an answer for this long, stop every camera")


class ReportedIncident(BaseModel):
    """A report the caller's key holds for a camera, as the API has it now: a worker taking
    the camera over learns from it what its predecessor reported, which handed-over state
    (taken seconds before that worker died) may not show yet."""

    case_id: str
    report: CaseReport = Field(
        description="As first received, with the `last_seen` and `cleared_at` the API holds"
    )


class ReportedIncidents(BaseModel):
    items: list[ReportedIncident]


def _rank(camera_id: str, worker_id: str) -> bytes:
    return hashlib.sha256(f"{camera_id}\0{worker_id}".encode()).digest()


def owner(camera_id: str, workers: Iterable[str]) -> str | None:
    """The camera's owner among `workers` (rendezvous: highest hash wins), None if none."""
    return max(workers, key=lambda w: _rank(camera_id, w), default=None)


def share(
    worker_id: str, cameras: Iterable[str], running: Mapping[str, Iterable[str]]
) -> list[str]:
    """The cameras `worker_id` runs now, given what each live worker (`running`: worker ->
    the cameras it reported, `worker_id` included) runs: those it owns that no other live
    worker still runs."""
    held: dict[str, set[str]] = {}
    for worker, cams in running.items():
        for cam in cams:
            held.setdefault(cam, set()).add(worker)
    workers = list(running)
    return [
        cam
        for cam in cameras
        if owner(cam, workers) == worker_id and not held.get(cam, set()) - {worker_id}
    ]
