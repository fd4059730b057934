"""The durable outbox against the real intake API over real HTTP."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from api.client import IntakeClient
from api.client.backoff import Backoff
from api.client.outbox import Outbox
from api.contract import CaseReport, EvidenceRef, Observation
from api.server.settings import Settings
from streams.cli import main
from tests.support.api import run_server
from tests.support.testcam import free_port

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def jpeg(path: Path, photo: Path | None = None) -> EvidenceRef:
    image = cv2.imread(str(photo)) if photo else np.full((48, 64, 3), 90, np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    path.write_bytes(data)
    return EvidenceRef(
        kind="confirmed", path=str(path), captured_at=T0, sha256=hashlib.sha256(data).hexdigest()
    )


def report(incident_id: str, evidence: list[EvidenceRef]) -> CaseReport:
    return CaseReport(
        id=incident_id,
        type="illegal_parking",
        event_code="09009",
        camera_id="cam-1",
        zone_id="bay",
        class_name="car",
        confidence=0.8,
        bbox=[10, 10, 60, 40],
        first_seen=T0,
        confirmed_at=T0 + timedelta(seconds=120),
        last_seen=T0 + timedelta(seconds=120),
        evidence=evidence,
    )


@pytest.fixture
def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "state" / "outbox.sqlite3", Backoff(initial_s=0.01, max_s=0.05))
    yield box
    box.close()


def test_outage_then_delivery_exactly_once_in_order(tmp_path, outbox, bus_jpg):
    settings = Settings(data_dir=tmp_path / "api")
    port = free_port()
    ev = jpeg(tmp_path / "inc-1-confirmed.jpg", bus_jpg)
    assert outbox.enqueue_report(report("inc-1", [ev]))
    assert not outbox.enqueue_report(report("inc-1", [ev]))  # the same report is queued once
    cleared = Observation(
        last_seen=T0 + timedelta(seconds=300), cleared_at=T0 + timedelta(seconds=330)
    )
    assert outbox.enqueue_observation("inc-1", cleared)
    assert [i.kind for i in outbox.due()] == ["post"]  # the PATCH waits for its POST

    with run_server(settings, port=free_port()) as setup:
        key = setup.create_key("ingest", "dispatch")
    with IntakeClient(f"http://127.0.0.1:{port}", key, timeout=2) as client:
        assert outbox.run_once(client, tmp_path) == 0  # API down: kept, error and retry time
        (item,) = outbox.pending()[:1]
        assert item.attempts == 1 and "ConnectError" in (item.last_error or "")

        with run_server(settings, port=port) as server:
            deadline = time.monotonic() + 10
            while outbox.pending() and time.monotonic() < deadline:
                outbox.run_once(client, tmp_path)
                time.sleep(0.05)
            assert outbox.counts() == {"outbox": 0, "dead_letter": 0, "delivered": 2}
            assert not Path(ev.path).exists()  # delivered evidence leaves the worker's disk
            (case,) = server_cases(server.url, key)
    assert case["report_count"] == 1
    assert case["cleared_at"] is not None
    assert len(case["evidence"]) == 1


def server_cases(url: str, key: str) -> list[dict]:
    return httpx.get(f"{url}/v1/cases", headers={"Authorization": f"Bearer {key}"}).json()["items"]


def test_permanent_refusal_is_a_dead_letter_listed_and_retryable(tmp_path, outbox, capsys):
    fake = tmp_path / "inc-2-confirmed.jpg"
    fake.write_bytes(b"this is not a picture")
    ref = EvidenceRef(
        kind="confirmed",
        path=str(fake),
        captured_at=T0,
        sha256=hashlib.sha256(fake.read_bytes()).hexdigest(),
    )
    outbox.enqueue_report(report("inc-2", [ref]))
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest")
        with IntakeClient(server.url, key) as client:
            assert outbox.run_once(client) == 0
            (dead,) = outbox.dead()
            assert dead.status == 422 and dead.incident_id == "inc-2"
            assert outbox.counts()["outbox"] == 0

            state = ["--state-dir", str(tmp_path / "state")]
            assert main(["outbox", "list", *state]) == 0
            listed = capsys.readouterr().out
            assert "0 pending, 1 dead" in listed and "status 422" in listed

            # The operator fixes the cause, then queues the dead letter again.
            assert main(["outbox", "retry", *state]) == 0
            assert "1 dead letter(s) queued again" in capsys.readouterr().out
            assert [i.incident_id for i in outbox.pending()] == ["inc-2"]


def test_outbox_survives_reopening(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    box.enqueue_report(report("inc-3", []))
    box.close()  # as after a crash: what was committed is there
    again = Outbox(path)
    assert [i.incident_id for i in again.pending()] == ["inc-3"]
    again.close()


def test_outbox_list_without_state_is_a_clear_error(tmp_path, capsys):
    assert main(["outbox", "list", "--state-dir", str(tmp_path / "nothing")]) == 2
    assert "no outbox at" in capsys.readouterr().err


def test_outbox_list_of_a_worker_of_several_processes_names_theirs(tmp_path, capsys):
    state = tmp_path / "state"
    for i in range(2):
        Outbox(state / f"process-{i}" / "outbox.sqlite3").close()
    assert main(["outbox", "list", "--state-dir", str(state)]) == 2
    said = capsys.readouterr().err
    assert f"one per process, --state-dir {state}/process-0 or {state}/process-1" in said
    assert main(["outbox", "list", "--state-dir", str(state / "process-1")]) == 0
    assert "0 pending, 0 dead" in capsys.readouterr().out


def test_an_unexpected_answer_is_retried_not_fatal(tmp_path, outbox):
    """A 2xx that is no receipt (a proxy's page) leaves the item queued with its error,
    instead of ending the delivery thread."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>captive portal</html>")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        outbox.enqueue_report(report("inc-proxy", [jpeg(tmp_path / "a.jpg")]))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with IntakeClient(url, "key") as client:
            assert outbox.run_once(client) == 0
        (item,) = outbox.pending()
        assert item.attempts == 1 and "unexpected" in (item.last_error or "")
    finally:
        server.shutdown()


def fake_evidence(path: Path) -> EvidenceRef:
    """A file the API refuses as evidence (not a picture): its report is dead-lettered."""
    path.write_bytes(b"this is not a picture")
    return EvidenceRef(
        kind="confirmed",
        path=str(path),
        captured_at=T0,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def test_observations_wait_behind_a_dead_report_and_follow_it(tmp_path, outbox, capsys):
    """A PATCH sent after its POST was refused would be a 404 and dead too: it waits, shown
    as such, and once the report is fixed and retried both land in order."""
    bad = tmp_path / "inc-4-confirmed.jpg"
    outbox.enqueue_report(report("inc-4", [fake_evidence(bad)]))
    cleared = Observation(
        last_seen=T0 + timedelta(seconds=300), cleared_at=T0 + timedelta(seconds=330)
    )
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        with IntakeClient(server.url, key) as client:
            assert outbox.run_once(client) == 0
            (dead,) = outbox.dead()
            assert dead.kind == "post"
            outbox.enqueue_observation("inc-4", cleared)
            assert outbox.due() == []  # held behind the dead report, not sent to a 404
            assert outbox.run_once(client) == 0
            assert [d.kind for d in outbox.dead()] == ["post"]

            state = ["--state-dir", str(tmp_path / "state")]
            assert main(["outbox", "list", *state]) == 0
            assert f"waits behind dead {dead.id}" in capsys.readouterr().out

            # The operator fixes the evidence, then retries: the report, then its clearing.
            good = jpeg(tmp_path / "fixed.jpg")
            bad.write_bytes(Path(good.path).read_bytes())
            fixed = report("inc-4", [good.model_copy(update={"path": str(bad)})])
            outbox._db.execute(  # the fix: the body now names the good file's hash
                "UPDATE dead_letter SET body = ? WHERE id = ?",
                (fixed.model_dump_json(), dead.id),
            )
            assert outbox.retry_dead() == 1
            assert [i.kind for i in outbox.due()] == ["post"]
            assert outbox.run_once(client) == 1
            assert outbox.run_once(client) == 1
            assert outbox.counts()["dead_letter"] == 0
            (case,) = server_cases(server.url, key)
            assert case["cleared_at"] is not None


def test_dead_letters_are_capped_oldest_first_with_their_evidence(tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    box = Outbox(tmp_path / "outbox.sqlite3", max_dead=2, evidence_dir=evidence)
    files = [evidence / f"inc-{n}-confirmed.jpg" for n in range(3)]
    for n, path in enumerate(files):
        box.enqueue_report(report(f"inc-{n}", [fake_evidence(path)]))
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest")
        with IntakeClient(server.url, key) as client:
            for _ in range(3):
                box.run_once(client)
    assert [d.incident_id for d in box.dead()] == ["inc-1", "inc-2"]
    assert box.dropped == 1
    assert not files[0].exists() and files[1].exists() and files[2].exists()
    box.close()


def test_a_cameras_reports_come_from_every_table_with_their_latest_observations(tmp_path):
    """What a restarted worker asks for a camera: its posts queued, dead or delivered, each
    with the `last_seen` and `cleared_at` its observations carry; an outbox written before
    the delivered log kept bodies opens and gains the columns."""
    path = tmp_path / "outbox.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE delivered (idempotency_key TEXT PRIMARY KEY, case_id TEXT,"
        " delivered_at REAL NOT NULL);"
    )
    old.execute("INSERT INTO delivered VALUES ('inc-old', 'case-1', ?)", (time.time(),))
    old.commit()
    old.close()

    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest")
        box = Outbox(path)
        try:
            other = report("inc-other", []).model_copy(update={"camera_id": "cam-2"})
            for item in (report("inc-sent", []), report("inc-waits", []), other):
                box.enqueue_report(item)
            later = T0 + timedelta(seconds=300)
            box.enqueue_observation("inc-sent", Observation(last_seen=later))
            box.enqueue_observation("inc-sent", Observation(last_seen=later, cleared_at=later))
            with IntakeClient(server.url, key) as client:
                # inc-sent's post, then its two observations: the rest waits behind.
                for _ in range(3):
                    (sent,) = [i for i in box.due() if i.incident_id == "inc-sent"]
                    assert box.deliver(client, sent, None)
            assert [i.incident_id for i in box.pending()] == ["inc-waits", "inc-other"]
            reports = box.reports("cam-1")
        finally:
            box.close()
    assert sorted(reports) == ["inc-sent", "inc-waits"]
    assert reports["inc-sent"].last_seen == reports["inc-sent"].cleared_at == later
    assert reports["inc-waits"].cleared_at is None
    assert reports["inc-waits"].last_seen == T0 + timedelta(seconds=120)
