"""`/v1/fleet` over real HTTP on both databases: camera definitions, heartbeats and the
hand-over rule (a camera goes to its owner only once nobody else runs it), camera state,
a key's reports of a camera, and liveness across an API restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from api.client import IntakeClient, RejectedError
from api.contract.fleet import owner, share
from tests.support.api import run_server

CAMERA = {"id": "cam-1", "source": "rtsp://127.0.0.1:8554/cam-1", "zones": []}


def test_rendezvous_moves_only_the_lost_workers_cameras():
    cameras = [f"cam-{n}" for n in range(200)]
    three = {c: owner(c, ["a", "b", "c"]) for c in cameras}
    two = {c: owner(c, ["a", "b"]) for c in cameras}
    assert {three[c] for c in cameras} == {"a", "b", "c"}
    assert all(two[c] == three[c] for c in cameras if three[c] != "c")  # nobody else moves
    # A camera whose owner changed waits until the worker running it lets it go.
    c_cams = [c for c in cameras if three[c] == "c"]
    assert share("c", cameras, {"a": [], "b": [], "c": []}) == c_cams
    assert share("c", cameras, {"a": [], "b": c_cams[:1], "c": []}) == c_cams[1:]


def test_cameras_heartbeats_and_state_hand_over(api, tmp_path):
    key = api.server.create_key("ingest", "fleet", name="fleet")
    # Definitions are the admin's: a fleet key may not write them.
    assert api.ingest.put("/v1/fleet/cameras/cam-1", json={"definition": CAMERA}).status_code == 403
    bad = api.admin.put("/v1/fleet/cameras/cam-1", json={"definition": {**CAMERA, "id": "x"}})
    assert bad.status_code == 422
    for body in (
        b'{"definition": {"source": "x", "w": NaN}}',
        b'{"definition": {"source": "\\u0000"}}',
    ):
        refused = api.admin.put(
            "/v1/fleet/cameras/cam-1", content=body, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 422, refused.text  # what no database stores as JSON
    for n in range(1, 5):
        definition = {**CAMERA, "id": f"cam-{n}"}
        response = api.admin.put(f"/v1/fleet/cameras/cam-{n}", json={"definition": definition})
        assert response.status_code == 200, response.text

    with IntakeClient(api.url, key) as a, IntakeClient(api.url, key) as b:
        mine = a.heartbeat("a", [])
        assert [c.camera_id for c in mine.cameras] == ["cam-1", "cam-2", "cam-3", "cam-4"]
        a.heartbeat("a", ["cam-1", "cam-2", "cam-3", "cam-4"])
        # b joins: it owns some cameras but gets none while a still runs them.
        b_owns = [c for c in ["cam-1", "cam-2", "cam-3", "cam-4"] if owner(c, ["a", "b"]) == "b"]
        assert b_owns
        assert b.heartbeat("b", []).cameras == []
        # a hears they are no longer its own, hands their state over and stops them.
        kept = [c.camera_id for c in a.heartbeat("a", ["cam-1", "cam-2", "cam-3", "cam-4"]).cameras]
        assert sorted(kept + b_owns) == ["cam-1", "cam-2", "cam-3", "cam-4"]
        a.put_camera_state("a", b_owns[0], b"sites of a")
        a.heartbeat("a", kept)
        assert [c.camera_id for c in b.heartbeat("b", []).cameras] == b_owns
        assert b.get_camera_state(b_owns[0]) == b"sites of a"
        assert b.get_camera_state(kept[0]) is None
        b.heartbeat("b", b_owns)
        # A worker that lost a camera may not overwrite its new owner's state.
        with pytest.raises(RejectedError) as refused:
            a.put_camera_state("a", b_owns[0], b"stale")
        assert refused.value.status == 409
        # b leaves cleanly: its cameras are a's at a's next heartbeat, not after the TTL.
        assert b.heartbeat("b", [], leaving=True).cameras == []
        assert [c.camera_id for c in a.heartbeat("a", kept).cameras] == sorted(kept + b_owns)

    listed = {c["camera_id"]: c for c in api.admin.get("/v1/fleet/cameras").json()["items"]}
    assert listed[kept[0]]["running_on"] == ["a"] and listed[kept[0]]["owner"] == "a"
    assert listed[b_owns[0]]["state_saved_at"] is not None
    workers = {w["worker_id"]: w for w in api.admin.get("/v1/fleet/workers").json()["items"]}
    assert workers["a"]["live"] and not workers["b"]["live"]
    assert api.admin.delete("/v1/fleet/cameras/cam-4").status_code == 204
    assert api.admin.delete("/v1/fleet/cameras/cam-4").status_code == 404


def test_a_worker_learns_what_its_key_reported_for_a_camera(api, photos):
    """What a worker taking a camera over asks the API: this key's reports of the camera,
    with the last sighting and clearing the API holds, and nobody else's."""
    from datetime import timedelta

    from tests.api.helpers import patch, post, report

    key = api.server.create_key("ingest", "fleet", name="fleet")
    other_key = api.server.create_key("ingest", "fleet", name="other fleet")
    bound_key = api.server.create_key("ingest", "fleet", name="north", cameras=["north-*"])
    case, files = report(photos, camera="cam-1", start=datetime.now(UTC) - timedelta(minutes=5))
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as http:
        created = post(http, case, files)
        assert created.status_code == 201, created.text
        with IntakeClient(api.url, key) as client:
            (held,) = client.camera_reports("cam-1")
            assert held.case_id == created.json()["case_id"]
            assert held.report.id == case.id and held.report.cleared_at is None
            assert client.camera_reports("cam-2") == []
            cleared_at = case.last_seen + timedelta(seconds=30)
            assert patch(http, case.id, {"cleared_at": cleared_at.isoformat()}).status_code == 200
            (held,) = client.camera_reports("cam-1")
            assert held.report.cleared_at == cleared_at
        later = {"since": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
        assert http.get("/v1/fleet/cameras/cam-1/reports", params=later).json()["items"] == []
        naive = {"since": "2025-06-01T08:00:00"}
        assert http.get("/v1/fleet/cameras/cam-1/reports", params=naive).status_code == 422
    with IntakeClient(api.url, other_key) as client:
        assert client.camera_reports("cam-1") == []  # another key's namespace
    with IntakeClient(api.url, bound_key) as client, pytest.raises(RejectedError) as refused:
        client.camera_reports("cam-1")
    assert refused.value.status == 403
    assert api.ingest.get("/v1/fleet/cameras/cam-1/reports").status_code == 403  # no fleet scope


def test_a_restarted_api_does_not_judge_workers_lost_over_its_own_down_time(settings):
    """The API is down for longer than the TTL while two workers run their cameras: after
    the restart, the first worker heard from must not be given the other's cameras (they
    would move there and back within seconds). A worker already lost before the API went
    down stays lost, and one silent for a TTL after the restart is lost again."""
    ttl = 5.0  # long enough for a loaded machine to make its calls within it
    settings = settings.model_copy(update={"fleet_worker_ttl_s": ttl})
    cameras = [f"cam-{n}" for n in range(1, 9)]
    with run_server(settings) as server:
        admin = server.create_key("admin")
        key = server.create_key("ingest", "fleet", name="fleet")
        with IntakeClient(server.url, admin) as client:
            for cam in cameras:
                client.put_fleet_camera(cam, {**CAMERA, "id": cam})
        with IntakeClient(server.url, key) as client:
            client.heartbeat("c", [])  # c is lost long before the API goes down
            time.sleep(ttl + 0.5)
            a_owns = [c for c in cameras if owner(c, ["a", "b"]) == "a"]
            b_owns = [c for c in cameras if owner(c, ["a", "b"]) == "b"]
            assert a_owns and b_owns
            client.heartbeat("a", a_owns)
            client.heartbeat("b", b_owns)
            assert _ids(client.heartbeat("a", a_owns)) == a_owns
            assert _ids(client.heartbeat("b", b_owns)) == b_owns
    time.sleep(ttl + 1.0)  # down for longer than the TTL
    with run_server(settings) as server, IntakeClient(server.url, key) as client:
        answer = client.heartbeat("a", a_owns)
        assert _ids(answer) == a_owns and answer.live_workers == 2  # b counts, c does not
        assert _ids(client.heartbeat("b", b_owns)) == b_owns
        time.sleep(ttl + 0.5)  # b goes silent: past the grace, it is lost
        assert _ids(client.heartbeat("a", a_owns)) == cameras


def _ids(answer) -> list[str]:
    return sorted(c.camera_id for c in answer.cameras)
