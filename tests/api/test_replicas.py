"""Several API processes on one PostgreSQL, the way it is deployed: two `streetwatch serve`
started together on an empty database (their migrations must not race), taking concurrent
intake for the same sites through both: no lost and no doubled case, the feed in order."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.server.auth import Scope, create_key
from api.server.db import Database
from tests.api.helpers import HERE, T0, post, report
from tests.support.api import fresh_database
from tests.support.testcam import wait_until

STREETWATCH = Path(sys.executable).with_name("streetwatch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pg_url(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        yield url


def _serve(url: str, data: Path, secret: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "STREETWATCH_DB": url,
        "STREETWATCH_DATA": str(data),
        "STREETWATCH_SECRET_KEY": secret,
        "STREETWATCH_PORT": str(port),
        "STREETWATCH_ACCESS_LOG": "false",
        "STREETWATCH_WEBHOOK_POLL_S": "0.2",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([str(STREETWATCH), "serve"], env=env, stdout=out, stderr=out)
    return proc, f"http://127.0.0.1:{port}"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_serve_processes_on_one_postgresql(
    pg_url: str, tmp_path: Path, photos: list[bytes]
) -> None:
    secret = secrets.token_urlsafe(32)
    # Started together on an empty database: both run the migrations, one after the other.
    procs = [_serve(pg_url, tmp_path / "data", secret, tmp_path / f"serve{i}.log") for i in (1, 2)]
    try:
        for (proc, url), i in zip(procs, (1, 2), strict=True):
            wait_until(
                lambda url=url, proc=proc: _ready(url) or proc.poll() is not None,
                60,
                f"server {i} to be ready",
                poll_s=0.1,
            )
            assert proc.poll() is None, (tmp_path / f"serve{i}.log").read_text()
        db = Database(pg_url)
        with db.write() as session:
            _, ingest = create_key(session, "workers", [Scope.ingest])
            _, dispatch = create_key(session, "dispatch", [Scope.dispatch])
        db.dispose()
        urls = [url for _, url in procs]
        clients = [
            httpx.Client(base_url=u, headers={"Authorization": f"Bearer {ingest}"}, timeout=60)
            for u in urls
        ]
        readers = [
            httpx.Client(base_url=u, headers={"Authorization": f"Bearer {dispatch}"}, timeout=60)
            for u in urls
        ]

        # 12 sites along a street, 40 m apart; each seen by two calibrated cameras (their
        # ground points 1 m apart). Every report is sent to both servers at once (a retry
        # through the load balancer), with the same Idempotency-Key.
        sites = 12
        reports: list[tuple[Any, Any]] = []
        for n in range(sites):
            point = {"lat": HERE[0] + n * 40 / 111_195.0, "lon": HERE[1]}
            for cam in ("cam-a", "cam-b"):
                lat = point["lat"] + (1 / 111_195.0 if cam == "cam-b" else 0.0)
                # Apart on one camera too (its sites are n, n+3, ...), and on every photo.
                box = [120.0 * (n // 3), 100.0, 120.0 * (n // 3) + 100, 200.0]
                reports.append(
                    report(
                        photos,
                        camera=f"{cam}-{n % 3}",
                        start=T0 + timedelta(seconds=n),
                        report_id=f"{cam}-site-{n}",
                        position={"lat": lat, "lon": HERE[1]},
                        bbox=box,
                        photo_offset=n,
                    )
                )

        # A reader follows the feed through both servers while the intake runs.
        followed: list[dict[str, Any]] = []
        done = threading.Event()

        def follow() -> None:
            cursor = "0"
            i = 0
            while True:
                finished = done.is_set()
                page = readers[i % 2].get("/v1/changes", params={"cursor": cursor, "limit": 7})
                body = page.raise_for_status().json()
                followed.extend(body["changes"])
                cursor, i = body["next_cursor"], i + 1
                if finished and not body["changes"]:
                    return

        reader = threading.Thread(target=follow)
        reader.start()

        def send(job: tuple[int, int]) -> int:
            n, server = job
            case, files = reports[n]
            return post(clients[server], case, files).status_code

        jobs = [(n, s) for n in range(len(reports)) for s in (0, 1)]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(send, jobs))
        done.set()
        reader.join(60)
        assert set(codes) <= {200, 201}, codes
        # Each site opened once, on one server or the other; its twin replayed that answer.
        assert codes.count(201) == 2 * sites

        cases = readers[0].get("/v1/cases", params={"limit": 500}).raise_for_status().json()
        assert len(cases["items"]) == sites
        assert sorted(c["report_count"] for c in cases["items"]) == [2] * sites
        ids = sorted(r for c in cases["items"] for r in c["report_ids"])
        assert ids == sorted(case.id for case, _ in reports)  # none lost, none twice

        feed = readers[1].get("/v1/changes", params={"limit": 1000}).json()["changes"]
        seqs = [c["seq"] for c in feed]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert [c["kind"] for c in feed].count("created") == sites
        assert [c["kind"] for c in feed].count("merged") == sites
        # What the follower read while it happened is the feed: nothing skipped or repeated.
        assert [c["seq"] for c in followed] == seqs
        for c in clients + readers:
            c.close()
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_migrate_is_a_command_and_serve_can_leave_it_to_it(pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "STREETWATCH_DB": pg_url, "STREETWATCH_DATA": str(tmp_path)}
    refused = subprocess.run(
        [str(STREETWATCH), "serve", "--no-migrate-on-start"], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "streetwatch migrate" in refused.stderr
    # Two at once, as replicas' init steps might: both succeed, the schema is migrated once.
    runs = [
        subprocess.Popen(
            [str(STREETWATCH), "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        outputs.append(out)
    db = Database(pg_url)
    current, head = db.revision()
    db.dispose()
    assert all(f"at migration {head}" in out for out in outputs)  # the newest, whichever
    assert current == head
