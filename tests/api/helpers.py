"""Building reports and multipart requests the way workers send them."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from sqlalchemy import text

from api.contract import CaseReport, EvidenceRef, Rendition
from detector.deidentify import obscure
from tests.support.api import RunningServer

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
# Two points about 11 m apart on a street in Hangzhou, and one about 1.1 km away.
HERE = (30.2741, 120.1551)
NEARBY = (30.2741, 120.15522)
FAR = (30.2841, 120.1551)
_ids = itertools.count(1)


@dataclass
class Api:
    """A running server and one client per scope."""

    server: RunningServer
    ingest: httpx.Client
    dispatch: httpx.Client
    admin: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def evidence_files(self) -> list[Path]:
        return [p for p in self.server.settings.evidence_dir.rglob("*") if p.is_file()]


def report(
    photos: list[bytes],
    *,
    camera: str = "cam-1",
    type_: str = "street_stall",
    code: str = "09006",
    at: tuple[float, float] | None = HERE,
    bbox: list[float] | None = None,
    start: datetime = T0,
    n_evidence: int = 2,
    photo_offset: int = 0,
    report_id: str | None = None,
    renditions: bool = False,
    **extra: Any,
) -> tuple[CaseReport, list[tuple[str, bytes]]]:
    """A worker's report with `n_evidence` real JPEGs (each with its de-identified
    rendition, with `renditions`), and the files to upload."""
    rid = report_id or f"{camera}-inc-{next(_ids)}"
    files = []
    refs = []
    for i in range(n_evidence):
        data = photos[(photo_offset + i) % len(photos)]
        name = f"{rid}-{i}.jpg"
        files.append((name, data))
        rendition = None
        if renditions:
            deid = deidentified(data)
            files.append((f"{rid}-{i}.deid.jpg", deid))
            rendition = Rendition(
                path=f"/var/lib/streetwatch/evidence/{rid}-{i}.deid.jpg",
                sha256=hashlib.sha256(deid).hexdigest(),
            )
        refs.append(
            EvidenceRef(
                kind="first_seen" if i == 0 else "confirmed",
                path=f"/var/lib/streetwatch/evidence/{name}",
                captured_at=start + timedelta(seconds=30 * i),
                sha256=hashlib.sha256(data).hexdigest(),
                deidentified=rendition,
            )
        )
    location = {"lat": at[0], "lon": at[1], "grid": "330102001"} if at else {}
    body = {
        "id": rid,
        "type": type_,
        "event_code": code,
        "camera_id": camera,
        "zone_id": "sidewalk-a",
        "class_name": "stall",
        "confidence": 0.87,
        "bbox": bbox or [100.0, 200.0, 300.0, 400.0],
        "first_seen": start.isoformat(),
        "confirmed_at": (start + timedelta(seconds=60)).isoformat(),
        "last_seen": (start + timedelta(seconds=120)).isoformat(),
        "location": location,
        "evidence": [json.loads(r.model_dump_json()) for r in refs],
        **extra,
    }
    return CaseReport.model_validate(body), files


def deidentified(jpeg: bytes) -> bytes:
    """A rendition as the worker makes one (detector.deidentify), for a head in the image's
    top-left quarter: the API is indifferent to where the heads were."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    obscure(image, (0, 0, w // 4, h // 4))
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def post(
    client: httpx.Client,
    case: CaseReport | str,
    files: list[tuple[str, bytes]],
    key: str | None = "",
) -> httpx.Response:
    """POST a report; the Idempotency-Key defaults to the report id, as workers derive it."""
    payload = case if isinstance(case, str) else case.model_dump_json()
    if key == "":
        key = "malformed" if isinstance(case, str) else case.id
    parts: list[Any] = [("case", (None, payload, "application/json"))]
    parts += [("evidence", (name, data, "image/jpeg")) for name, data in files]
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/cases", files=parts, headers=headers)


def patch(
    client: httpx.Client, id_: str, observation: dict[str, Any], files: list[tuple[str, bytes]] = ()
) -> httpx.Response:
    parts: list[Any] = [("observation", (None, json.dumps(observation), "application/json"))]
    parts += [("evidence", (name, data, "image/jpeg")) for name, data in files]
    return client.patch(f"/v1/cases/{id_}", files=parts)


def all_changes(client: httpx.Client, page: int = 3) -> list[dict[str, Any]]:
    """The whole change feed, read from the start in small pages."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": page}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/changes", params=params).raise_for_status().json()
        out += body["changes"]
        if body["next_cursor"] == cursor or not body["changes"]:
            return out
        cursor = body["next_cursor"]


def count_cases(client: httpx.Client) -> int:
    return len(client.get("/v1/cases", params={"limit": 500}).raise_for_status().json()["items"])


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


@contextmanager
def write_lock_held(api: Api, hold_s: float) -> Iterator[None]:
    """From another connection, the database's write lock (SQLite `BEGIN IMMEDIATE`,
    PostgreSQL the advisory lock every writer takes) held for `hold_s` from entry, as a long
    intake or a prune would hold it. Released on time by its own thread whatever the body
    waits on, so a request that blocks the server cannot hold up the release."""
    taken, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            db = api.server.db
            if db.is_sqlite:
                conn = sqlite3.connect(db.url.removeprefix("sqlite:///"), isolation_level=None)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    taken.set()
                    time.sleep(hold_s)
                    conn.execute("ROLLBACK")
                finally:
                    conn.close()
                return
            from api.server.db import _PG_WRITE_LOCK

            with db.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_WRITE_LOCK})
                taken.set()
                time.sleep(hold_s)
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_WRITE_LOCK})
                conn.commit()
        except BaseException as exc:  # shown by the caller, not lost in this thread
            errors.append(exc)
        finally:
            taken.set()
            done.set()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    taken.wait(30)
    if errors:
        raise errors[0]
    try:
        yield
    finally:
        done.wait(hold_s + 30)
        holder.join(5)
    if errors:
        raise errors[0]
