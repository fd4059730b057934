"""`streetwatch run --processes N`: a supervisor and N worker processes on one host, end to end
against loopback RTSP cameras, the real API and the real model (streams/live/supervisor.py).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
import yaml

from api.client.outbox import Outbox
from api.contract.fleet import owner
from api.server.settings import Settings
from streams.live.supervisor import cores_per_process, default_processes, stranded_outboxes
from streams.live.worker import Shard
from tests.streams.test_worker import (  # noqa: F401 (fixtures)
    BAY,
    RULES,
    cases,
    empty_clip,
    parked_clip,
    street,
    worker_factory,
    write_config,
)
from tests.support.api import run_server
from tests.support.testcam import free_port, wait_until
from tests.test_outbox import report


def ids_on(shard: Shard, count: int, prefix: str = "cam") -> list[str]:
    """The first `count` camera ids `shard` owns: tests place cameras on children by name."""
    found, n = [], 0
    while len(found) < count:
        if shard.owns(camera := f"{prefix}-{n}"):
            found.append(camera)
        n += 1
    return found


def test_the_default_is_a_process_per_core_with_32_cameras_each() -> None:
    assert default_processes(cores=2, cameras=1) == 1  # today's single process
    assert default_processes(cores=2, cameras=63) == 1
    assert default_processes(cores=2, cameras=64) == 2
    assert default_processes(cores=16, cameras=400) == 12
    assert default_processes(cores=16, cameras=4000) == 16
    assert default_processes(cores=16, cameras=None) == 1  # a fleet worker
    assert cores_per_process(16, 12) == 1 and cores_per_process(16, 4) == 4
    assert cores_per_process(2, 3) == 1


def test_an_outbox_another_number_of_processes_left_is_named(tmp_path) -> None:
    state = tmp_path / "state"
    for path in (state / "outbox.sqlite3", state / "process-2" / "outbox.sqlite3"):
        box = Outbox(path)
        box.enqueue_report(report("inc-1", []))
        box.close()
    Outbox(state / "process-1" / "outbox.sqlite3").close()  # empty: nothing to say
    top = f"{state / 'outbox.sqlite3'}: 1 items to deliver"
    third = f"{state / 'process-2' / 'outbox.sqlite3'}: 1 items to deliver"
    assert stranded_outboxes(state, 1) == [third]
    assert stranded_outboxes(state, 2) == [top, third]
    assert stranded_outboxes(state, 3) == [top]
    (state / "process-3").mkdir()
    (state / "process-3" / "outbox.sqlite3").write_bytes(b"not a database")
    assert "unreadable" in stranded_outboxes(state, 3)[-1]


def test_two_processes_deliver_once_and_a_killed_child_resumes_its_incident(
    street,  # noqa: F811 (test_worker's fixtures, imported above)
    empty_clip,  # noqa: F811
    worker_factory,  # noqa: F811
    tmp_path,
):
    """A camera on each child; the host answers /healthz and /metrics for both. Child 0 is
    killed with SIGKILL while its camera's incident is open: the supervisor starts it again,
    it resumes the incident (not confirmed again) and clears it once; both outboxes drain."""
    (cam_a,) = ids_on(Shard(0, 2), 1)
    (cam_b,) = ids_on(Shard(1, 2), 1)
    state = tmp_path / "state"
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest", "dispatch")
        url = street.url("cam")
        config = write_config(tmp_path / "config.yaml", server.url, {cam_a: url, cam_b: url})
        host = worker_factory(config, key, state, ["--processes", "2"])
        wait_until(lambda: len(cases(server, key)) == 2, 120, "a case on each camera")

        # One health and one metrics endpoint for the host, every camera's series in it.
        health = wait_until(lambda: (r := host.health()).status_code == 200 and r, 30, "health")
        body = health.json()
        assert body["status"] == "ok" and body["cameras"] == 2
        assert {p: d["cameras"] for p, d in body["processes"].items()} == {"0": 1, "1": 1}
        for process, camera in (("0", cam_a), ("1", cam_b)):
            assert host.metric("streetwatch_cameras", process=process) == 1
            assert host.metric("streetwatch_camera_up", camera=camera, process=process) == 1
            assert host.metric("streetwatch_samples_processed_total", camera=camera) > 0
        assert host.metric("streetwatch_processes") == 2
        # Each child keeps its own state directory.
        assert (state / "process-0" / "outbox.sqlite3").exists()
        assert (state / "process-1" / "outbox.sqlite3").exists()
        assert not (state / "outbox.sqlite3").exists()

        # SIGKILL child 0 with its incident open: it is started again and resumes it.
        child = body["processes"]["0"]["pid"]
        os.kill(child, signal.SIGKILL)
        wait_until(
            lambda: host.metric("streetwatch_process_restarts_total", process="0") == 1,
            30,
            "child 0 started again",
        )
        assert any("killed by signal 9" in line for line in host.log)
        wait_until(
            lambda: any("resumed 1 open sites (1 reported" in line for line in host.log),
            90,
            "the restarted child resuming its incident",
        )
        restarted = wait_until(
            lambda: (r := host.health()).status_code == 200 and r.json(), 60, "healthy again"
        )
        assert restarted["processes"]["0"]["pid"] != child
        assert restarted["processes"]["1"]["pid"] == body["processes"]["1"]["pid"]
        wait_until(
            lambda: (
                host.metric("streetwatch_samples_processed_total", camera=cam_a)
                > 2 * RULES["illegal_parking"]["dwell_s"] * 2
            ),
            60,
            "samples for twice the dwell after resuming",
        )
        assert host.metric("streetwatch_incidents_total", camera=cam_a, event="confirmed") == 0

        # The bus leaves: each case clears once.
        street.stop()
        street.mounts = {"cam": empty_clip}
        street.restart()
        wait_until(
            lambda: all(c["cleared_at"] for c in cases(server, key)), 120, "both cases cleared"
        )
        assert host.signal(signal.SIGTERM) == 0, "\n".join(host.log[-30:])
        assert host.pending(state / "process-0") == 0
        assert host.pending(state / "process-1") == 0
        found = cases(server, key)
        assert sorted(c["camera_id"] for c in found) == sorted([cam_a, cam_b])
        assert all(c["report_count"] == 1 for c in found)
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'streetwatch_reports_total{outcome="created"} 2.0' in metrics
        assert 'outcome="merged"' not in metrics
        assert 'outcome="replayed"' not in metrics


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_split_a_shard_by_the_same_stable_hash(
    processes,
    worker_factory,  # noqa: F811 (test_worker's fixture, imported above)
    tmp_path,
    default_model,
):
    """Shard 1/2 over P processes: the host runs exactly shard 1/2's cameras, child I those
    of shard (1 + 2I)/(2P). Cameras that never answer are enough to see who runs what."""
    dead = f"rtsp://127.0.0.1:{free_port()}/nothing"
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        key = server.create_key("ingest")
        cameras = {f"cam-{n}": dead for n in range(12)}
        config = write_config(tmp_path / "config.yaml", server.url, cameras)
        args = ["--shard", "1/2", "--processes", str(processes)]
        host = worker_factory(config, key, args=args)
        mine = [c for c in cameras if Shard(1, 2).owns(c)]
        assert 0 < len(mine) < len(cameras)
        wait_until(
            lambda: host.metric("streetwatch_cameras") == len(mine), 90, "the shard's cameras"
        )
        for i in range(processes):
            for camera in cameras:
                # A running camera that never connects is down (0); one not run is absent.
                series = host.series("streetwatch_camera_up", camera=camera, process=str(i))
                expected = [0.0] if Shard(1 + 2 * i, 2 * processes).owns(camera) else []
                assert series == expected, (camera, i)
        if processes == 3:
            assert host.signal(signal.SIGTERM) == 0
            return
        # The supervisor killed outright: its processes are told to stop, none is orphaned.
        children = [d["pid"] for d in host.health().json()["processes"].values()]
        host.signal(signal.SIGKILL)
        wait_until(lambda: all(map(ended, children)), 60, "the orphaned processes ending")


def ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_each_process_is_a_fleet_member_of_its_own(worker_factory, tmp_path, default_model):  # noqa: F811
    """`run --fleet --worker-id host --processes 2`: members host.0 and host.1, each running
    its rendezvous share of the API's cameras, each with its own hand-over and state."""
    dead = f"rtsp://127.0.0.1:{free_port()}/nothing"
    cameras = [f"cam-{n}" for n in range(8)]
    members = ["host.0", "host.1"]
    with run_server(Settings(data_dir=tmp_path / "api")) as server:
        admin = server.create_key("admin")
        fleet_key = server.create_key("ingest", "fleet")
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=10
        ) as http:
            for camera in cameras:
                zones = [{"id": "bay", "polygon": BAY, "checks": ["illegal_parking"]}]
                definition = {"id": camera, "source": dead, "sample": {"fps": 1}, "zones": zones}
                response = http.put(f"/v1/fleet/cameras/{camera}", json={"definition": definition})
                response.raise_for_status()
            config = tmp_path / "worker.yaml"
            config.write_text(yaml.safe_dump({"model": "default", "api": {"url": server.url}}))
            args = ["--fleet", "--worker-id", "host", "--processes", "2"]
            host = worker_factory(config, fleet_key, tmp_path / "state", args)
            expected = {c: [owner(c, members)] for c in cameras}
            assert set(owner(c, members) for c in cameras) == set(members)

            def running_on() -> dict[str, list[str]]:
                items = http.get("/v1/fleet/cameras").json()["items"]
                return {c["camera_id"]: c["running_on"] for c in items}

            wait_until(lambda: running_on() == expected, 90, "each member running its share")
            for i, member in enumerate(members):
                mine = sum(owner(c, members) == member for c in cameras)
                assert host.metric("streetwatch_cameras", process=str(i)) == mine
                assert (tmp_path / "state" / f"process-{i}" / "outbox.sqlite3").exists()
            assert host.health().json()["cameras"] == len(cameras)
            # A clean stop: both members leave the fleet, nothing runs anywhere.
            assert host.signal(signal.SIGTERM) == 0
            assert all(not on for on in running_on().values())
