"""A fleet that heals itself: three `streetwatch run --fleet` workers against one
`streetwatch serve` on PostgreSQL, a dozen loopback RTSP cameras, the real model.

One camera shows a bus parked in its bay; its worker is killed with SIGKILL while the bus's
dwell runs. Its cameras must be watched again within the bound, the dwell must continue on
the next worker (one case, first seen before the kill), no camera may run on two live
workers at once, and the worker that comes back gets its own cameras back, nothing else
moving.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from api.contract.fleet import owner
from api.server.auth import Scope, create_key
from api.server.db import Database
from models.cache import HOME_ENV, home
from tests.support.api import fresh_database, postgres_cluster
from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames
from tests.support.testcam import RtspServer, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BOUND_S = 20.0  # a lost worker's cameras run elsewhere within this (TTL 10 s + a heartbeat)
SCALE = 0.5  # cameras at 384x288: the zones of the 768x576 footage, halved
BAY = [
    [round(x * SCALE), round(y * SCALE)]
    for x, y in [[380, 380], [767, 380], [767, 560], [380, 560]]
]
DWELL_S = 30
CAMERAS = [f"cam-{n:02d}" for n in range(12)]
BUS_CAMERA = "cam-00"
WORKERS = ["w1", "w2", "w3"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, bus_jpg, vtest_avi, rtsp_server_deps) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("fleet")
    bus = Sprite(crop(bus_jpg, BUS_CROP, 300)).parked(0, 20, (420, 300))
    return {
        "parked": render(out / "parked.mp4", video_frames(vtest_avi), 20, 5, [bus]),
        "empty": render(out / "empty.mp4", video_frames(vtest_avi), 20, 5),
    }


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if url := os.environ.get("STREETWATCH_TEST_PG_URL"):
        with fresh_database(url) as db:
            yield db
        return
    with postgres_cluster() as admin, fresh_database(admin) as db:
        yield db


class Process:
    """A `streetwatch` subprocess whose output is kept."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.log: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Process:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *self.argv],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        return self

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log.append(line.rstrip())

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def sites_in(state: bytes) -> list[dict]:
    """The open sites in a camera state archive as a worker handed it over."""
    with tarfile.open(fileobj=io.BytesIO(state), mode="r:gz") as tar:
        member = tar.extractfile("state.json")
        assert member is not None
        document = json.load(member)
    return [site for sites in document["sites"].values() for site in sites]


def test_a_killed_workers_cameras_move_and_its_incident_continues(clips, pg_url, tmp_path):
    env = os.environ | {HOME_ENV: str(home()), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    mounts = {cam: clips["parked" if cam == BUS_CAMERA else "empty"] for cam in CAMERAS}
    with ExitStack() as stack:
        server = stack.enter_context(RtspServer(mounts, fps=5, width=384, height=288, keyint=5))
        api = Process(
            ["serve", "--db", pg_url, "--data-dir", str(tmp_path / "api"), "--port", str(api_port)],
            env,
        ).start()
        stack.callback(api.kill)
        wait_until(lambda: _ok(f"{api_url}/readyz"), 60, "the API ready")
        db = Database(pg_url)
        with db.write() as session:
            _, admin = create_key(session, "ops", [Scope.admin, Scope.dispatch])
            _, fleet_key = create_key(session, "fleet", [Scope.ingest, Scope.fleet])
        db.dispose()

        config = tmp_path / "config.yaml"
        cameras = [
            {
                "id": cam,
                "source": server.url(cam),
                "sample": {"fps": 1},
                "zones": [{"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}],
            }
            for cam in CAMERAS
        ]
        config.write_text(
            yaml.safe_dump(
                {
                    "model": "default",
                    "rules": {"illegal_parking": {"dwell_s": DWELL_S, "clear_s": 20}},
                    "api": {"url": api_url},
                    "cameras": cameras,
                }
            )
        )
        admin_env = env | {"STREETWATCH_API_KEY": admin}
        imported = subprocess.run(
            [sys.executable, "-m", "streams.cli", "cameras", "import", "--config", str(config)],
            env=admin_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        assert "imported 12 cameras" in imported.stdout
        # The workers' own config has no cameras: they come from the API.
        worker_config = tmp_path / "worker.yaml"
        worker_config.write_text(
            yaml.safe_dump({**yaml.safe_load(config.read_text()), "cameras": []})
        )

        health_ports = {w: free_port() for w in WORKERS}
        worker_env = env | {"STREETWATCH_API_KEY": fleet_key}

        def worker(w: str) -> Process:
            argv = ["run", "--fleet", "--worker-id", w, "--config", str(worker_config)]
            argv += ["--state-dir", str(tmp_path / w), "--health-port", str(health_ports[w])]
            argv += ["--open-timeout", "5", "--read-timeout", "3"]
            return Process(argv, worker_env).start()

        workers = {w: worker(w) for w in WORKERS}
        for w in WORKERS:
            stack.callback(workers[w].kill)

        http = stack.enter_context(
            httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        )
        fleet_http = stack.enter_context(
            httpx.Client(
                base_url=api_url, headers={"Authorization": f"Bearer {fleet_key}"}, timeout=10
            )
        )
        watch = Watch(http)
        stack.enter_context(watch)

        # Everyone runs its rendezvous share.
        def settled(live: list[str]) -> bool:
            now = watch.latest()
            return bool(now) and all(now[c] == [owner(c, live)] for c in CAMERAS)

        assert all(any(owner(c, WORKERS) == w for c in CAMERAS) for w in WORKERS)
        wait_until(lambda: settled(WORKERS), 120, "every camera on its owner")
        for w in WORKERS:
            assert _ok(f"http://127.0.0.1:{health_ports[w]}/healthz")

        # The bus camera's worker has handed over a site in its dwell: kill it.
        victim = owner(BUS_CAMERA, WORKERS)
        wait_until(lambda: _dwelling(fleet_http, BUS_CAMERA), 90, "the bus's dwell handed over")
        assert not _cases(http)
        lost = [c for c in CAMERAS if owner(c, WORKERS) == victim]
        killed_at = time.time()
        workers[victim].kill()

        survivors = [w for w in WORKERS if w != victim]
        for cam in lost:
            moved = wait_until(
                lambda cam=cam: watch.running_since(cam, owner(cam, survivors), killed_at),
                BOUND_S + 30,
                f"camera {cam} on {owner(cam, survivors)}",
            )
            assert moved - killed_at <= BOUND_S, f"{cam} moved after {moved - killed_at:.1f} s"

        # The dwell continues on the bus camera's new worker: one case, first seen before
        # the kill (a restarted dwell would be first seen after it).
        (case,) = wait_until(lambda: _cases(http), DWELL_S + 60, "the bus confirmed")
        assert case["camera_id"] == BUS_CAMERA and case["report_count"] == 1
        first_seen = _ts(case["first_seen"])
        assert first_seen < killed_at
        assert _ts(case["confirmed_at"]) - first_seen >= DWELL_S

        # The killed worker comes back under its name and gets its own cameras back.
        workers[victim] = worker(victim)
        stack.callback(workers[victim].kill)
        wait_until(lambda: settled(WORKERS), 60, "the returning worker's cameras back")
        steady = watch.changes()
        time.sleep(10)
        assert watch.changes() == steady, "assignments moved again after the return"
        assert settled(WORKERS)
        assert len(_cases(http)) == 1

        assert watch.longest_overlap() == 0.0  # never two live workers on one camera
        assert workers[victim].terminate() == 0  # a clean stop hands over at once
        handed = wait_until(
            lambda: (
                all(watch.latest().get(c) == [owner(c, survivors)] for c in lost) and time.time()
            ),
            BOUND_S,
            "a cleanly stopped worker's cameras moved",
        )
        assert handed
        server.stop()


KILL_DELAYS_S = (0.2, 1.0, 2.5, 4.0)  # after the POST that opened the case
# The README's bound on what a dying worker's successor misses: state saved every 2 s and
# handed over every 4 s (an incident event's at once); some slack for a loaded machine.
HANDOVER_LOSS_S, LOADED_SLACK_S = 6.0, 2.0
BUS_STAYS_S, LOOP_S = 24, 40  # the bus parks for 24 s of every 40 s the camera loops


@pytest.fixture(scope="module")
def comings_and_goings(tmp_path_factory, bus_jpg, vtest_avi, rtsp_server_deps) -> Path:
    out = tmp_path_factory.mktemp("fleet-kill")
    bus = Sprite(crop(bus_jpg, BUS_CROP, 300)).parked(0, BUS_STAYS_S, (420, 300))
    return render(out / "comes-and-goes.mp4", video_frames(vtest_avi), LOOP_S, 5, [bus])


def test_a_worker_killed_right_after_it_reports_leaves_one_case_that_clears(
    comings_and_goings, pg_url, tmp_path
):
    """Issue 28: two fleet workers, a bus that parks and leaves again and again. Each time
    the bus's case is posted, the worker that posted it is killed with SIGKILL a moment
    later (0.2 to 4 s), before or after it handed its camera's sites over. The next worker
    continues the incident under its id, whatever it was handed: one case per parking,
    cleared when the bus leaves, and no worker's outbox holds a dead letter."""
    env = os.environ | {HOME_ENV: str(home()), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    camera = "cam-bus"
    with ExitStack() as stack:
        server = stack.enter_context(
            RtspServer({camera: comings_and_goings}, fps=5, width=384, height=288, keyint=5)
        )
        argv = ["serve", "--db", pg_url, "--data-dir", str(tmp_path / "api")]
        api = Process([*argv, "--port", str(api_port), "--fleet-worker-ttl-s", "6"], env)
        api.start()
        stack.callback(api.kill)
        wait_until(lambda: _ok(f"{api_url}/readyz"), 60, "the API ready")
        db = Database(pg_url)
        with db.write() as session:
            _, admin = create_key(session, "ops", [Scope.admin, Scope.dispatch])
            _, fleet_key = create_key(session, "fleet", [Scope.ingest, Scope.fleet])
        db.dispose()
        http = stack.enter_context(
            httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        )
        definition = {
            "id": camera,
            "source": server.url(camera),
            "sample": {"fps": 1},
            "zones": [{"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}],
        }
        http.put(f"/v1/fleet/cameras/{camera}", json={"definition": definition}).raise_for_status()
        config = tmp_path / "worker.yaml"
        # A dwell longer than the hand-over bound: the last periodic hand-over before the
        # kill holds the bus's site (in its dwell, or confirmed if the one at the event
        # got out first); a shorter one may not, and the next worker's own report of the
        # bus would join the case as a second report.
        rules = {"illegal_parking": {"dwell_s": 12, "clear_s": 5, "occlusion_s": 3}}
        config.write_text(
            yaml.safe_dump({"model": "default", "rules": rules, "api": {"url": api_url}})
        )
        worker_env = env | {"STREETWATCH_API_KEY": fleet_key}
        fleet_http = stack.enter_context(
            httpx.Client(
                base_url=api_url, headers={"Authorization": f"Bearer {fleet_key}"}, timeout=10
            )
        )

        def worker(w: str) -> Process:
            argv = ["run", "--fleet", "--worker-id", w, "--config", str(config)]
            argv += ["--state-dir", str(tmp_path / w), "--open-timeout", "5", "--read-timeout", "3"]
            process = Process(argv, worker_env).start()
            stack.callback(process.kill)
            everyone.append(process)
            return process

        everyone: list[Process] = []

        # The module's database holds the other fleet test's case too: not one of these.
        earlier = {c["id"] for c in _cases(http)}
        workers = {w: worker(w) for w in ("w1", "w2")}
        seen = set(earlier)
        rounds = []
        for delay in KILL_DELAYS_S:
            # A new parking is posted; the worker that posted it dies `delay` s after.
            case = wait_until(
                lambda: next((c for c in _cases(http) if c["id"] not in seen), None),
                3 * LOOP_S + 60,
                "the bus's next case",
                poll_s=0.05,
            )
            seen.add(case["id"])
            (report_id,) = case["report_ids"]

            def poster(report_id: str = report_id) -> str | None:
                return next(
                    (w for w, p in workers.items() if any(report_id in line for line in p.log)),
                    None,
                )

            # Its log line may still be on its way through the pipe.
            victim = wait_until(poster, 10, f"the worker that confirmed {report_id}", 0.02)
            time.sleep(max(0.0, _ts(case["created_at"]) + delay - time.time()))
            killed_at = time.time()
            workers[victim].kill()
            handed = fleet_http.get(f"/v1/fleet/cameras/{camera}/state")
            lost_s = killed_at - _saved_at(handed.raise_for_status().content)

            def cleared(case_id: str = case["id"]) -> dict | None:
                got = http.get(f"/v1/cases/{case_id}").json()
                return got if got["cleared_at"] else None

            done = wait_until(cleared, LOOP_S + 60, f"case {case['id']} cleared")
            rounds.append(
                (round(killed_at - _ts(case["created_at"]), 2), victim, round(lost_s, 1), done)
            )
            workers[victim] = worker(victim)  # back under its name, for the next round

        print("kill delay after the POST, worker killed, s of state lost:", [r[:3] for r in rounds])
        for kill_delay, _, lost_s, case in rounds:
            assert case["report_count"] == 1 and case["status"] == "reported", (kill_delay, case)
            assert lost_s <= HANDOVER_LOSS_S + LOADED_SLACK_S, (kill_delay, lost_s)
            # Cleared by the worker that watched the bus leave.
            (report_id,) = case["report_ids"]
            assert any(f"cleared: {report_id}" in line for p in everyone for line in p.log)
        assert len([c for c in _cases(http) if c["id"] not in earlier]) == len(KILL_DELAYS_S)
        for line in (line for p in everyone for line in p.log):
            if "resumed" in line or "did not deliver" in line or "outbox" in line:
                print(line)

        def live() -> bool:
            items = http.get("/v1/fleet/workers").json()["items"]
            return sum(w["live"] for w in items) == len(workers)

        wait_until(live, 60, "the last worker back")  # its signal handlers are in place
        for process in workers.values():
            assert process.terminate() == 0
        for w in workers:
            with sqlite3.connect(tmp_path / w / "outbox.sqlite3") as outbox:
                (dead,) = outbox.execute("SELECT COUNT(*) FROM dead_letter").fetchone()
                (pending,) = outbox.execute("SELECT COUNT(*) FROM outbox").fetchone()
            assert (dead, pending) == (0, 0), (w, [r[:2] for r in rounds])
        server.stop()


class Watch:
    """Samples `GET /v1/fleet/cameras` twice a second on a thread: which live workers run
    each camera, over time."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.samples: list[tuple[float, dict[str, list[str]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items = self.http.get("/v1/fleet/cameras").json()["items"]
            except (httpx.HTTPError, ValueError, KeyError):
                items = None
            if items is not None:
                self.samples.append((time.time(), {c["camera_id"]: c["running_on"] for c in items}))
            self._stop.wait(0.5)

    def latest(self) -> dict[str, list[str]]:
        return self.samples[-1][1] if self.samples else {}

    def running_since(self, camera: str, worker: str, since: float) -> float | None:
        """When `worker` was first seen running `camera` after `since`."""
        for at, running in list(self.samples):
            if at >= since and worker in running.get(camera, []):
                return at
        return None

    def changes(self) -> int:
        """How many times any camera's set of running workers changed."""
        count, last = 0, None
        for _, running in list(self.samples):
            if last is not None and running != last:
                count += 1
            last = running
        return count

    def longest_overlap(self) -> float:
        """The longest a camera was seen on two live workers at once, in seconds (one
        sample counts as its half-second interval); 0 if never."""
        longest, since = 0.0, {}
        for at, running in list(self.samples):
            for cam, workers in running.items():
                if len(workers) > 1:
                    since.setdefault(cam, at)
                    longest = max(longest, at - since[cam] + 0.5)
                else:
                    since.pop(cam, None)
        return longest


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _dwelling(http: httpx.Client, camera: str) -> bool:
    response = http.get(f"/v1/fleet/cameras/{camera}/state")
    return response.status_code == 200 and any(
        s["incident"] is None and s["dwelt_s"] >= 5 for s in sites_in(response.content)
    )


def _saved_at(state: bytes) -> float:
    """When the camera's state in a handed-over archive was taken."""
    with tarfile.open(fileobj=io.BytesIO(state), mode="r:gz") as tar:
        member = tar.extractfile("state.json")
        assert member is not None
        return float(json.load(member)["saved_at"])


def _cases(http: httpx.Client) -> list[dict]:
    response = http.get("/v1/cases")
    response.raise_for_status()
    return response.json()["items"]


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def test_a_camera_state_archive_moves_between_stores_and_nothing_else_unpacks(tmp_path):
    from detector.pipeline import PipelineState
    from streams.camera.site_store import CameraState, SiteStore

    here, there = SiteStore(tmp_path / "a"), SiteStore(tmp_path / "b")
    static = {"long": np.full((4, 4, 3), 7, np.float32)}
    here.save("cam", CameraState(PipelineState({"bay|illegal_parking": []}, {}, static)))
    there.unpack("cam", here.pack("cam"))
    state = there.load("cam")
    assert state is not None and state.pipeline.sites == {"bay|illegal_parking": []}
    assert np.array_equal(state.pipeline.static["long"], static["long"])
    assert here.pack("nobody") is None

    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../state.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    for bad in (evil.getvalue(), b"not an archive"):
        with pytest.raises(ValueError):
            there.unpack("cam", bad)
    assert there.load("cam") is not None  # a refused archive leaves the state as it was
    assert not (tmp_path / "state.json").exists()


def test_the_fleet_thread_hands_over_what_it_stops_and_stops_all_when_cut_off(tmp_path):
    """`FleetCameras` against the real API (SQLite), one heartbeat at a time, on a clock
    the test moves: a released camera's sites reach the API before the heartbeat that
    says it stopped; without an answer for the TTL, every camera stops."""
    from api.client import IntakeClient
    from api.server.settings import Settings
    from detector.pipeline import PipelineState
    from streams.camera.site_store import CameraState, SiteStore
    from streams.live.fleet import FleetCameras
    from tests.support.api import run_server

    now = [0.0]
    sites = SiteStore(tmp_path / "sites")
    camera = {"id": "cam-1", "source": "rtsp://127.0.0.1:1/cam-1", "zones": [
        {"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}
    ]}  # fmt: skip
    with run_server(Settings(data_dir=tmp_path / "api", fleet_worker_ttl_s=5)) as server:
        admin = server.create_key("admin")
        key = server.create_key("ingest", "fleet")
        with IntakeClient(server.url, admin) as client:
            client.put_fleet_camera("cam-1", camera)
        fleet = FleetCameras(IntakeClient(server.url, key), "w1", sites, clock=lambda: now[0])
        fleet.beat()
        assert fleet.changed.is_set() and [c.id for c in fleet.take()] == ["cam-1"]
        fleet.running({"cam-1"}, set())
        sites.save("cam-1", CameraState(PipelineState({"bay|illegal_parking": []}, {}, None)))
        fleet.running(set(), {"cam-1"})  # stopped here (say, the camera moves away)
        fleet.beat()
        with IntakeClient(server.url, key) as client:
            handed = client.get_camera_state("cam-1")
        assert handed is not None and sites_in(handed) == []
        assert fleet.connected
    now[0] += 6  # past the TTL, the API gone
    fleet.running({"cam-1"}, set())
    fleet.beat()
    assert not fleet.connected
    assert fleet.changed.is_set() and fleet.take() == []


def test_handed_over_state_is_reconciled_with_what_the_api_holds(tmp_path):
    """The four ways a dead worker's last hand-over can lag what reached the API, on the
    state a SiteStore round trip gives: a dwell the API knows was confirmed continues as
    that incident; one it knows cleared is over (the sites' shots follow their sites); a
    report the API never got is posted again; an incident the API holds open whose site the
    state no longer has (cleared on the dead worker) is cleared."""
    from datetime import UTC, datetime, timedelta

    from api.contract import CaseReport
    from api.contract.fleet import ReportedIncident
    from detector.incidents import incident_id
    from detector.pipeline import PipelineState
    from streams.camera.reconcile import reconcile
    from streams.camera.site_store import CameraState, SiteStore

    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def site(first_s: float, incident: str | None = None) -> dict:
        at = (t0 + timedelta(seconds=first_s)).timestamp()
        return {
            "anchor": [1.0, 1.0], "box": [10.0, 10.0, 90.0, 90.0], "first_seen": at,
            "last_seen": at + 40, "first_shot_at": at, "dwelt_s": 40.0, "unseen_s": 0.0,
            "class_scores": {"bus": 30.0}, "score_sum": 30.0, "sightings": 40,
            "attended": 0.0,
            "incident": incident and {
                "id": incident, "class_name": "bus", "confidence": 0.9, "confirmed_at": at + 30
            },
        }  # fmt: skip

    def report(first_s: float, cleared: bool = False) -> CaseReport:
        first = t0 + timedelta(seconds=first_s)
        return CaseReport(
            id=incident_id("cam", "bay", "illegal_parking", first), type="illegal_parking",
            event_code="09009", camera_id="cam", zone_id="bay", class_name="bus",
            confidence=0.8, bbox=[10, 10, 90, 90], first_seen=first,
            confirmed_at=first + timedelta(seconds=30), last_seen=first + timedelta(seconds=50),
            cleared_at=first + timedelta(seconds=60) if cleared else None,
        )  # fmt: skip

    dwelling, cleared_on_api, never_sent, cleared_there = (report(s) for s in (0, 100, 200, 300))
    sites = [site(0), site(100), site(200, never_sent.id)]
    shots = {f"bay|illegal_parking|{n}": np.full((2, 2, 3), n, np.uint8) for n in range(3)}
    store = SiteStore(tmp_path / "sites")
    saved_at = (t0 + timedelta(seconds=400)).timestamp()
    store.save(
        "cam",
        CameraState(
            PipelineState({"bay|illegal_parking": sites}, shots, None),
            {never_sent.id: never_sent},
            saved_at=saved_at,
        ),
    )
    state = store.load("cam")
    assert state is not None
    held = [
        ReportedIncident(case_id=f"cs_{n}", report=r)
        for n, r in enumerate(
            [dwelling, report(100, cleared=True), cleared_there, report(500)]  # 500: later
        )
    ]
    to_post, to_clear = reconcile("cam", state, held)

    continued, unsent = state.pipeline.sites["bay|illegal_parking"]
    assert continued["incident"]["id"] == dwelling.id
    assert continued["incident"]["confirmed_at"] == dwelling.confirmed_at.timestamp()
    assert unsent["incident"]["id"] == never_sent.id
    assert set(state.reports) == {dwelling.id, never_sent.id}
    shots_now = [int(state.pipeline.shots[f"bay|illegal_parking|{n}"][0, 0, 0]) for n in (0, 1)]
    assert shots_now == [0, 2]  # the first and the third site's
    assert "bay|illegal_parking|2" not in state.pipeline.shots
    assert [r.id for r in to_post] == [never_sent.id]
    assert [(r.id, r.cleared_at) for r in to_clear] == [
        (cleared_there.id, datetime.fromtimestamp(saved_at, UTC))
    ]
    assert cleared_on_api.id not in state.reports
