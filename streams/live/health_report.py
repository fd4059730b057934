"""Reports each camera's health and a recent thumbnail to the API (`POST
/v1/cameras/{id}/health`), so a dead camera shows in the console, not only in a log.

Health events (streams/sources/health.py) set the state; the worker hands over the latest frame it
processed; a background thread posts every `every_s` seconds, and soon after a change of
state. Failures are logged and retried on the next round: health is current state, never
queued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from streams.sources.health import HealthEvent

log = logging.getLogger(__name__)

STATE_OF = {
    "connected": "up",
    "unfrozen": "up",
    "disconnected": "reconnecting",
    "reconnecting": "reconnecting",
    "decode_error": "reconnecting",
    "dead": "dead",
    "frozen": "frozen",
    "scene_changed": "scene_changed",
}
THUMB_WIDTH = 320


@dataclass
class _Camera:
    """A camera's health as the reporter last heard it and posts it: the reporter's own
    bookkeeping (read by its thread), set by the live camera's events."""

    state: str | None = None
    detail: str = ""
    since: float | None = None
    frame: np.ndarray | None = None
    frame_at: float | None = None
    thumb_sent_at: float = 0.0


def thumbnail(image: np.ndarray, width: int = THUMB_WIDTH) -> bytes:
    h, w = image.shape[:2]
    small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise ValueError("cannot encode a thumbnail")
    return data.tobytes()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class HealthReporter:
    def __init__(
        self, post: Callable[[str, dict[str, Any], bytes | None], None], every_s: float = 60.0,
        thumbnail_every_s: float | None = None,
    ) -> None:  # fmt: skip
        self.post = post
        self.every_s = every_s
        self.thumbnail_every_s = thumbnail_every_s if thumbnail_every_s is not None else every_s
        self.cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def event(self, event: HealthEvent) -> None:
        state = STATE_OF.get(event.kind)
        if state is None:
            return
        with self._lock:
            cam = self.cameras.setdefault(event.camera_id, _Camera())
            if cam.state != state:
                cam.state, cam.since = state, event.at
                self._wake.set()
            cam.detail = event.detail

    def saw(self, camera_id: str, image: np.ndarray, at: float) -> None:
        """The latest frame the worker processed (kept by reference, encoded when sent)."""
        with self._lock:
            cam = self.cameras.setdefault(camera_id, _Camera())
            cam.frame, cam.frame_at = image, at
            if cam.state is None:
                cam.state, cam.since = "up", at
                self._wake.set()

    def forget(self, camera_id: str) -> None:
        with self._lock:
            self.cameras.pop(camera_id, None)

    def report_once(self) -> int:
        """Posts every camera's state; returns how many posts succeeded."""
        now = time.time()
        with self._lock:
            items = [(i, c) for i, c in self.cameras.items() if c.state is not None]
        sent = 0
        for camera_id, cam in items:
            frame = cam.frame
            image = None
            if frame is not None and now - cam.thumb_sent_at >= self.thumbnail_every_s:
                try:
                    image = thumbnail(frame)
                except (ValueError, cv2.error) as exc:
                    log.warning("camera %s: no thumbnail (%s)", camera_id, exc)
            health = {
                "state": cam.state,
                "detail": cam.detail[:1000] or None,
                "since": _iso(cam.since),
                "last_frame_at": _iso(cam.frame_at),
            }
            try:
                self.post(camera_id, health, image)
            except Exception as exc:  # the API is down: next round
                log.warning("camera %s: health report failed (%s)", camera_id, exc)
                continue
            sent += 1
            if image is not None:
                cam.thumb_sent_at = now
        return sent

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health-report", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every_s)
            if self._stop.is_set():
                break
            self._wake.clear()
            self._stop.wait(0.5)  # a burst of events is one report
            self.report_once()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
