"""`/v1/fleet` over real HTTP on both databases: camera definitions, heartbeats and the
hand-over rule (a camera goes to its owner only once nobody else runs it), camera state."""

from __future__ import annotations

import pytest

from api.client import IntakeClient, RejectedError
from api.contract.fleet import owner, share

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
