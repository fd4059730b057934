"""Section 8: the fleet's failover time over repeated kills.

One `streetwatch serve` on a throwaway PostgreSQL, three `streetwatch run --fleet` workers,
loopback RTSP cameras (vtest.avi at 384x288, 5 fps, sampled at 1 fps). Each round kills the
worker that runs the most cameras with SIGKILL, measures the time until every one of its
cameras runs on a survivor (`GET /v1/fleet/cameras` sampled every 0.2 s: a camera runs on a
worker once that worker reports it in its heartbeat, its stream started), then starts the
killed worker again under its name and waits until the fleet has settled back.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import yaml

from api.contract.fleet import owner
from api.server.auth import Scope, create_key
from api.server.db import Database
from benchmarks.common import ROOT, machine, table, work_dir
from models.cache import HOME_ENV, home
from models.samples import VTEST_AVI
from tests.support.api import fresh_database, postgres_cluster
from tests.support.scenes import render, video_frames
from tests.support.testcam import RtspServer, free_port, wait_until

WORKERS = ["w1", "w2", "w3"]
TTL_S = 10.0  # the API's default --fleet-worker-ttl-s


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *argv], env=env, stdout=out, stderr=out
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(30)


def run(cameras: int, kills: int) -> str:
    clip = work_dir() / "fleet-empty-20s.mp4"
    if not clip.exists():
        render(clip, video_frames(VTEST_AVI), 20, 5)
    ids = [f"cam-{n:02d}" for n in range(cameras)]
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sw-failover-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        env = os.environ | {HOME_ENV: str(home()), "PYTHONPATH": str(ROOT)}
        server = stack.enter_context(
            RtspServer({c: clip for c in ids}, fps=5, width=384, height=288, keyint=5)
        )
        admin_url = stack.enter_context(postgres_cluster())
        db_url = stack.enter_context(fresh_database(admin_url))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = _spawn(
            ["serve", "--db", db_url, "--data-dir", str(base / "api"), "--port", str(port)],
            env,
            base / "api.log",
        )
        stack.callback(_kill, api)
        wait_until(lambda: _ok(f"{url}/readyz"), 60, "the API")
        db = Database(db_url)
        with db.write() as session:
            _, admin = create_key(session, "ops", [Scope.admin])
            _, key = create_key(session, "fleet", [Scope.ingest, Scope.fleet])
        db.dispose()
        http = stack.enter_context(
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        )
        zone = {"id": "bay", "polygon": [[190, 190], [383, 190], [383, 280], [190, 280]]}
        zone["checks"] = ["illegal_parking"]
        for cam in ids:
            definition = {
                "id": cam,
                "source": server.url(cam),
                "sample": {"fps": 1},
                "zones": [zone],
            }
            http.put(f"/v1/fleet/cameras/{cam}", json={"definition": definition}).raise_for_status()
        cfg = base / "worker.yaml"
        cfg.write_text(yaml.safe_dump({"model": "default", "api": {"url": url}, "cameras": []}))
        worker_env = env | {"STREETWATCH_API_KEY": key}

        def start(w: str) -> subprocess.Popen[bytes]:
            argv = ["run", "--fleet", "--worker-id", w, "--config", str(cfg)]
            argv += ["--state-dir", str(base / w), "--open-timeout", "5", "--read-timeout", "3"]
            process = _spawn(argv, worker_env, base / f"{w}.log")
            stack.callback(_kill, process)
            return process

        def running() -> dict[str, list[str]]:
            items = http.get("/v1/fleet/cameras").json()["items"]
            return {c["camera_id"]: c["running_on"] for c in items}

        def settled(live: list[str]) -> Callable[[], bool]:
            return lambda: all(r == [owner(c, live)] for c, r in running().items())

        processes = {w: start(w) for w in WORKERS}
        wait_until(settled(WORKERS), 180, "every camera on its owner")
        share = {w: [c for c in ids if owner(c, WORKERS) == w] for w in WORKERS}
        victim = max(WORKERS, key=lambda w: len(share[w]))
        survivors = [w for w in WORKERS if w != victim]
        for _ in range(kills):
            killed_at = time.monotonic()
            _kill(processes[victim])
            wait_until(
                lambda: all(running()[c] == [owner(c, survivors)] for c in share[victim]),
                120,
                "the lost cameras on the survivors",
                poll_s=0.2,
            )
            times.append(time.monotonic() - killed_at)
            processes[victim] = start(victim)
            wait_until(settled(WORKERS), 120, "the returning worker's cameras back")
        server.stop()
    rows = [[
        f"{cameras} cameras, 3 workers, kill -9 the one with {len(share[victim])}",
        len(times),
        f"**{statistics.median(times):.1f}**",
        f"{max(times):.1f}",
        f"{min(times):.1f}",
        " / ".join(f"{t:.1f}" for t in times),
    ]]  # fmt: skip
    body = table(["fleet", "kills", "median s", "worst s", "best s", "each"], rows)
    return (
        f"{body}\n\nTTL {TTL_S:g} s, heartbeat every 2 s: the bound is the TTL plus a "
        f"heartbeat plus a stream start. Machine: {machine()}; other engineers' jobs share "
        f"its cores."
    )


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
