"""A durable outbox: reports and observations wait on disk until the intake API takes them.

SQLite (WAL, synchronous=FULL) in the worker's state directory. An item is committed before
the call that enqueued it returns and is deleted only after the API accepted it, so a crash,
`kill -9`, restart or API outage loses nothing; the deterministic Idempotency-Key makes a
redelivery after an unacknowledged success land once. Items of one incident go in order
(its POST before its PATCHes). Retryable failures back off exponentially with full jitter,
capped; a permanent 4xx moves the item to the dead-letter table with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from api.client.backoff import Backoff
from api.client.intake import IntakeClient, RejectedError, RetryableError
from api.contract.cases import CaseReport, Observation

log = logging.getLogger(__name__)

Kind = Literal["post", "patch"]
OUTBOX_FILE = "outbox.sqlite3"  # in a state directory: the worker's, or a scoring job's
DELIVERED_KEEP_S = 7 * 24 * 3600
MAX_DEAD_LETTERS = 10_000  # a refused item waits for an operator; beyond this the oldest go
DEFAULT_BACKOFF = Backoff(initial_s=1.0, max_s=300.0)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('post', 'patch')),
    body TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_incident ON outbox (incident_id, id);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS delivered (
    idempotency_key TEXT PRIMARY KEY,
    case_id TEXT,
    delivered_at REAL NOT NULL,
    incident_id TEXT,
    kind TEXT,
    body TEXT
);
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (delivered_at);
"""


class OutboxError(RuntimeError):
    """The outbox cannot be written (disk full, unreadable state directory)."""


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    incident_id: str
    kind: Kind
    body: str
    idempotency_key: str
    attempts: int
    next_attempt_at: float
    created_at: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DeadItem:
    id: int
    incident_id: str
    kind: Kind
    idempotency_key: str
    attempts: int
    failed_at: float
    status: int | None
    reason: str


class Outbox:
    def __init__(
        self,
        path: Path,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_dead: int = MAX_DEAD_LETTERS,
        evidence_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.backoff = backoff
        self.max_dead = max_dead
        self.evidence_dir = evidence_dir  # where the queued items' evidence files wait
        self.dropped = 0  # dead letters dropped over the cap, this process
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._add_delivered_bodies()
            self._forget_delivered()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc

    def _add_delivered_bodies(self) -> None:
        """An outbox from before the delivered log kept what it delivered gains the columns
        (its older rows keep only their keys)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(delivered)")}
        for column in ("incident_id", "kind", "body"):
            if column not in columns:
                self._db.execute(f"ALTER TABLE delivered ADD COLUMN {column} TEXT")
        # A worker asks it for each camera it starts (`reports`).
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS delivered_camera ON delivered"
            " (json_extract(body, '$.camera_id')) WHERE kind = 'post'"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- enqueue -------------------------------------------------------------------------

    def enqueue_report(self, report: CaseReport) -> bool:
        """Queues a new case; the incident id is its Idempotency-Key. False if already queued."""
        return self._enqueue(report.id, "post", report.model_dump_json(), report.id)

    def enqueue_observation(self, incident_id: str, observation: Observation) -> bool:
        body = observation.model_dump_json()
        key = f"{incident_id}:obs:{_digest(body)}"
        return self._enqueue(incident_id, "patch", body, key)

    def _enqueue(self, incident_id: str, kind: Kind, body: str, key: str) -> bool:
        now = time.time()
        try:
            with self._lock:
                if self._known(key):
                    return False
                self._db.execute(
                    "INSERT INTO outbox (incident_id, kind, body, idempotency_key,"
                    " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (incident_id, kind, body, key, now, now),
                )
        except sqlite3.Error as exc:
            raise OutboxError(
                f"cannot queue {kind} for {incident_id} in {self.path}: {exc}"
            ) from exc
        return True

    def _known(self, key: str) -> bool:
        for table in ("outbox", "dead_letter", "delivered"):
            row = self._db.execute(
                f"SELECT 1 FROM {table} WHERE idempotency_key = ?", (key,)
            ).fetchone()
            if row:
                return True
        return False

    # -- delivery ------------------------------------------------------------------------

    def due(self, now: float | None = None, limit: int = 32) -> list[Item]:
        """Items ready to send: the oldest pending item of each incident, if its time came,
        unless the incident's report itself lies in the dead letters: its observations wait
        behind it (the API does not know the case yet) and follow it once it is retried."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT o.* FROM outbox o WHERE o.next_attempt_at <= ? AND o.id = "
                "(SELECT MIN(id) FROM outbox WHERE incident_id = o.incident_id) "
                "AND NOT EXISTS (SELECT 1 FROM dead_letter d WHERE d.incident_id = o.incident_id"
                " AND d.kind = 'post') ORDER BY o.id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Item(*row) for row in rows]

    def held(self) -> dict[int, int]:
        """Pending items waiting behind their incident's dead report: item id -> dead id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT o.id, d.id FROM outbox o JOIN dead_letter d ON d.incident_id ="
                " o.incident_id AND d.kind = 'post'"
            ).fetchall()
        return dict(rows)

    def deliver(self, client: IntakeClient, item: Item, evidence_dir: Path | None) -> bool:
        """Sends one item; True when the API took it. Never raises for API failures.

        `evidence_dir` is where the worker keeps evidence it has not delivered yet: files
        are read from it, and removed once the API holds them, so the disk stays flat.
        """
        payload = (CaseReport if item.kind == "post" else Observation).model_validate_json(
            item.body
        )
        try:
            if isinstance(payload, CaseReport):
                receipt = client.post_case(payload, evidence_dir, item.idempotency_key)
            else:
                receipt = client.patch_case(item.incident_id, payload, evidence_dir)
        except RetryableError as exc:
            self._retry_later(item, str(exc), exc.retry_after)
            return False
        except RejectedError as exc:
            self._bury(item, exc.status, str(exc))
            return False
        except OSError as exc:  # evidence file unreadable: nothing the API can fix
            self._bury(item, None, f"evidence unreadable: {exc}")
            return False
        except Exception as exc:  # e.g. a 2xx with a body that is no receipt (a proxy's page)
            log.exception("outbox: %s %s: unexpected failure", item.kind, item.incident_id)
            self._retry_later(item, f"unexpected {type(exc).__name__}: {exc}", None)
            return False
        with self._transaction():
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))
            self._db.execute(
                "INSERT OR REPLACE INTO delivered VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item.idempotency_key,
                    receipt.case_id,
                    time.time(),
                    item.incident_id,
                    item.kind,
                    item.body,
                ),
            )
        if evidence_dir is not None:
            for ref in payload.evidence:
                for name in ref.files:
                    (evidence_dir / name).unlink(missing_ok=True)
        return True

    def _retry_later(self, item: Item, error: str, retry_after: float | None) -> None:
        delay = max(retry_after or 0.0, self.backoff.delay(item.attempts))
        log.info(
            "outbox: %s %s failed (%s); retry in %.1f s", item.kind, item.incident_id, error, delay
        )
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE id = ?",
                (time.time() + delay, error, item.id),
            )

    def _bury(self, item: Item, status: int | None, reason: str) -> None:
        log.error("outbox: %s %s refused for good: %s", item.kind, item.incident_id, reason)
        self._cap_dead_letters()
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letter VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.incident_id,
                    item.kind,
                    item.body,
                    item.idempotency_key,
                    item.attempts + 1,
                    item.created_at,
                    time.time(),
                    status,
                    reason,
                ),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item.id,))

    def _cap_dead_letters(self) -> None:
        """Keeps the dead letters under `max_dead`: the oldest go (logged and counted in
        `dropped`), with the evidence files only they still referred to."""
        with self._lock:
            over = self._db.execute("SELECT COUNT(*) FROM dead_letter").fetchone()[0] + 1
        over -= self.max_dead
        if over <= 0:
            return
        with self._transaction():
            rows = self._db.execute(
                "SELECT id, incident_id, kind, body FROM dead_letter ORDER BY failed_at LIMIT ?",
                (over,),
            ).fetchall()
            self._db.executemany("DELETE FROM dead_letter WHERE id = ?", [(r[0],) for r in rows])
        for _, incident_id, kind, body in rows:
            log.error(
                "outbox: dead letter %s %s dropped (over %d)", kind, incident_id, self.max_dead
            )
            if self.evidence_dir is not None:
                payload = (CaseReport if kind == "post" else Observation).model_validate_json(body)
                for ref in payload.evidence:
                    for name in ref.files:
                        (self.evidence_dir / name).unlink(missing_ok=True)
        self.dropped += len(rows)

    def _forget_delivered(self) -> None:
        """The delivered log only guards against queueing a thing twice: a week of it."""
        with self._lock:
            self._db.execute(
                "DELETE FROM delivered WHERE delivered_at < ?", (time.time() - DELIVERED_KEEP_S,)
            )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the lock. Rolled back if a statement fails (a full
        disk), so the connection never stays inside it, hiding later autocommit writes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def run_once(self, client: IntakeClient, evidence_dir: Path | None = None) -> int:
        """Delivers what is due; returns how many items the API took."""
        delivered = sum(self.deliver(client, item, evidence_dir) for item in self.due())
        if delivered:
            self._forget_delivered()
        return delivered

    # -- what a camera reported ----------------------------------------------------------

    def reports(self, camera_id: str) -> dict[str, CaseReport]:
        """The camera's reports this outbox holds, queued, dead or delivered (for the week it
        remembers deliveries), by incident id, each with the `last_seen` and `cleared_at` of
        its observations: what a restarted worker's saved sites may be a step behind. Raises
        OutboxError if the outbox cannot be read."""
        try:
            with self._lock:
                posts = self._bodies(
                    "kind = 'post' AND json_extract(body, '$.camera_id') = ?", [camera_id]
                )
                ids = sorted({incident_id for incident_id, _ in posts})
                marks = ", ".join("?" * len(ids))
                patches = self._bodies(f"kind = 'patch' AND incident_id IN ({marks})", ids)
            reports = {i: CaseReport.model_validate_json(body) for i, body in posts}
            for incident_id, body in patches:
                report = reports[incident_id]
                seen = Observation.model_validate_json(body)
                reports[incident_id] = report.model_copy(
                    update={
                        "last_seen": max(report.last_seen, seen.last_seen or report.last_seen),
                        "cleared_at": report.cleared_at or seen.cleared_at,
                    }
                )
        except (sqlite3.Error, ValueError) as exc:
            raise OutboxError(f"cannot read {camera_id}'s reports from {self.path}: {exc}") from exc
        return reports

    def _bodies(self, where: str, params: list[str]) -> list[tuple[str, str]]:
        """(incident id, body) of the items delivered, dead and queued, in that order."""
        return [
            row
            for table in ("delivered", "dead_letter", "outbox")
            for row in self._db.execute(
                f"SELECT incident_id, body FROM {table} WHERE {where}", params
            )
        ]

    # -- inspection and repair -----------------------------------------------------------

    def pending(self) -> list[Item]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [Item(*row) for row in rows]

    def dead(self) -> list[DeadItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, incident_id, kind, idempotency_key, attempts, failed_at, status, reason"
                " FROM dead_letter ORDER BY id"
            ).fetchall()
        return [DeadItem(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                table: self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("outbox", "dead_letter", "delivered")
            }

    def retry_dead(self, ids: list[int] | None = None) -> int:
        """Moves dead letters back to the queue (all, or those ids), due now."""
        where, args = (
            ("", ())
            if not ids
            else (
                f" WHERE id IN ({','.join('?' * len(ids))})",
                tuple(ids),
            )
        )
        with self._transaction():
            moved = self._db.execute(
                "INSERT INTO outbox (id, incident_id, kind, body, idempotency_key, attempts,"
                " next_attempt_at, created_at, last_error) SELECT id, incident_id, kind, body,"
                f" idempotency_key, 0, ?, created_at, reason FROM dead_letter{where}",
                (time.time(), *args),
            ).rowcount
            self._db.execute(f"DELETE FROM dead_letter{where}", args)
        return moved


class Deliverer:
    """A background thread that drains the outbox into the API."""

    def __init__(
        self,
        outbox: Outbox,
        client_factory: Callable[[], IntakeClient],
        evidence_dir: Path | None = None,
        poll_s: float = 0.5,
        on_delivered: Callable[[int], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.client_factory = client_factory
        self.evidence_dir = evidence_dir
        self.poll_s = poll_s
        self.on_delivered = on_delivered
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_s: float = 0.0) -> None:
        """Stops, first trying for up to `drain_s` to deliver what is due."""
        deadline = time.monotonic() + drain_s
        while drain_s and time.monotonic() < deadline and self.outbox.due():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with self.client_factory() as client:
            while not self._stop.is_set():
                try:
                    delivered = self.outbox.run_once(client, self.evidence_dir)
                except sqlite3.Error as exc:
                    log.error("outbox: %s", exc)
                    delivered = 0
                if delivered and self.on_delivered:
                    self.on_delivered(delivered)
                if not delivered:
                    self._wake.wait(self.poll_s)
                    self._wake.clear()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
