"""Cross-report merging: one incident seen twice, or by two cameras, is one case."""

from __future__ import annotations

from datetime import timedelta

from tests.api.helpers import (
    FAR,
    HERE,
    NEARBY,
    T0,
    Api,
    all_changes,
    count_cases,
    patch,
    post,
    report,
)


def placed(point: tuple[float, float], north_m: float = 0.0) -> dict[str, float]:
    """A calibrated camera's `position` for an object `north_m` metres north of `point`."""
    return {"lat": point[0] + north_m / 111_195.0, "lon": point[1]}


def test_two_cameras_seeing_one_stall_make_one_case(api: Api, photos: list[bytes]) -> None:
    # Both cameras are calibrated: their ground points for the stall lie 2 m apart.
    a, a_files = report(photos, camera="cam-north", position=placed(HERE))
    b, b_files = report(photos, camera="cam-south", at=NEARBY, photo_offset=2,
                        start=T0 + timedelta(minutes=3), position=placed(HERE, 2))  # fmt: skip
    first = post(api.ingest, a, a_files, key="a").json()
    r = post(api.ingest, b, b_files, key="b")
    assert r.status_code == 200, r.text
    second = r.json()
    assert second == {
        "case_id": first["case_id"],
        "report_id": b.id,
        "merged": True,
        "status": "reported",
        "report_count": 2,
    }
    case = api.dispatch.get(f"/v1/cases/{first['case_id']}").json()
    assert case["report_count"] == 2 and case["sources"] == ["cam-north", "cam-south"]
    assert len(case["evidence"]) == 4  # appended, not replaced
    assert case["last_seen"] > a.last_seen.isoformat()[:19]
    assert [h["kind"] for h in case["history"]] == ["created", "merged"]
    assert count_cases(api.dispatch) == 1
    # The case's position is the object's, not the camera's location.
    assert case["position"] == placed(HERE)
    assert case["location"]["lat"] == HERE[0]


def test_same_camera_overlapping_box_merges_without_map_position(
    api: Api, photos: list[bytes]
) -> None:
    a, a_files = report(photos, at=None, bbox=[100, 100, 200, 200])
    b, b_files = report(photos, at=None, bbox=[110, 105, 210, 205], photo_offset=2)
    c, c_files = report(photos, at=None, bbox=[400, 400, 500, 500], photo_offset=4)
    assert post(api.ingest, a, a_files, key="a").status_code == 201
    assert post(api.ingest, b, b_files, key="b").json()["merged"] is True
    assert post(api.ingest, c, c_files, key="c").status_code == 201  # elsewhere in the view
    assert count_cases(api.dispatch) == 2


def test_no_merge_when_far_other_type_or_out_of_window(api: Api, photos: list[bytes]) -> None:
    a, files = report(photos, camera="cam-1", position=placed(HERE))
    assert post(api.ingest, a, files, key="a").status_code == 201
    far, files = report(photos, camera="cam-2", at=FAR, position=placed(FAR))
    assert post(api.ingest, far, files, key="far").status_code == 201
    garbage, files = report(photos, camera="cam-3", at=NEARBY, type_="garbage", code="06010",
                            position=placed(HERE))  # fmt: skip
    assert post(api.ingest, garbage, files, key="garbage").status_code == 201
    later, files = report(photos, camera="cam-4", at=NEARBY, start=T0 + timedelta(hours=3),
                          position=placed(HERE))  # fmt: skip
    assert post(api.ingest, later, files, key="later").status_code == 201
    assert count_cases(api.dispatch) == 4


def test_no_merge_into_a_case_that_left_the_workflow(api: Api, photos: list[bytes]) -> None:
    a, files = report(photos, position=placed(HERE))
    case_id = post(api.ingest, a, files, key="a").json()["case_id"]
    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "rejected", "actor": "reviewer"}
    ).raise_for_status()
    b, files = report(photos, camera="cam-2", at=NEARBY, position=placed(HERE, 1))
    assert post(api.ingest, b, files, key="b").status_code == 201


def test_observations_and_clearing_of_a_merged_case(api: Api, photos: list[bytes]) -> None:
    a, a_files = report(photos, camera="cam-north", position=placed(HERE))
    b, b_files = report(photos, camera="cam-south", at=NEARBY, photo_offset=2,
                        position=placed(HERE, 1))  # fmt: skip
    case_id = post(api.ingest, a, a_files, key="a").json()["case_id"]
    post(api.ingest, b, b_files, key="b").raise_for_status()

    seen = (T0 + timedelta(minutes=20)).isoformat()
    cleared = (T0 + timedelta(minutes=25)).isoformat()
    r = patch(api.ingest, a.id, {"last_seen": seen, "cleared_at": cleared})  # by report id
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["case_id"] == case_id and body["changed"] is True and body["report_ids"] == [a.id]
    assert body["cleared_at"] is None  # cam-south has not seen it go
    again = patch(api.ingest, a.id, {"last_seen": seen, "cleared_at": cleared}).json()
    assert again["changed"] is False  # idempotent

    extra = photos[6]
    import hashlib

    ref = {
        "kind": "observation",
        "path": "C:\\evidence\\late.jpg",
        "captured_at": (T0 + timedelta(minutes=26)).isoformat(),
        "sha256": hashlib.sha256(extra).hexdigest(),
    }
    later = (T0 + timedelta(minutes=30)).isoformat()
    r = patch(api.ingest, b.id, {"cleared_at": later, "evidence": [ref]}, [("late.jpg", extra)])
    assert r.status_code == 200, r.text
    assert r.json()["cleared_at"].startswith("2025-06-01T08:30")  # now every report is cleared
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert case["last_seen"].startswith("2025-06-01T08:20")
    assert len(case["evidence"]) == 5
    kinds = [c["kind"] for c in all_changes(api.dispatch)]
    assert kinds == ["created", "merged", "observation", "observation"]


def test_patch_unknown_id_is_404(api: Api) -> None:
    r = patch(api.ingest, "nope", {"last_seen": T0.isoformat()})
    assert r.status_code == 404


def test_one_cameras_reports_merge_by_box_not_by_its_location(
    api: Api, photos: list[bytes]
) -> None:
    # Every report of a camera carries the camera's location: two bays side by side in its
    # view are two incidents even though their map positions are equal.
    a, a_files = report(photos, bbox=[0, 0, 100, 100])
    b, b_files = report(photos, bbox=[300, 0, 400, 100], photo_offset=2)
    assert post(api.ingest, a, a_files).status_code == 201
    assert post(api.ingest, b, b_files).status_code == 201


def test_a_new_occupation_after_clearing_is_a_new_case(api: Api, photos: list[bytes]) -> None:
    first, files = report(photos, cleared_at=(T0 + timedelta(minutes=3)).isoformat())
    assert post(api.ingest, first, files).status_code == 201
    again, files = report(photos, start=T0 + timedelta(minutes=10), photo_offset=2)
    assert post(api.ingest, again, files).status_code == 201
    assert count_cases(api.dispatch) == 2


# -- what the audit of merging probed (issue 12) ---------------------------------------------


def test_uncalibrated_cameras_merge_nothing_across_cameras(api: Api, photos: list[bytes]) -> None:
    # Two different cars seen by two cameras 11 m apart, neither camera calibrated: the
    # cameras' closeness says nothing about the cars.
    a, a_files = report(photos, camera="cam-1", at=HERE, bbox=[100, 200, 300, 400])
    b, b_files = report(photos, camera="cam-2", at=NEARBY, photo_offset=2,
                        start=T0 + timedelta(minutes=1))  # fmt: skip
    assert post(api.ingest, a, a_files).status_code == 201
    r = post(api.ingest, b, b_files)
    assert r.status_code == 201, r.text
    # A third car, in a separate box on the first camera, is a case of its own too.
    c, c_files = report(photos, camera="cam-1", at=HERE, bbox=[600, 200, 800, 400],
                        photo_offset=4, start=T0 + timedelta(minutes=2))  # fmt: skip
    r = post(api.ingest, c, c_files)
    assert r.status_code == 201, r.text
    cases = api.dispatch.get("/v1/cases").json()["items"]
    assert sorted(c["report_count"] for c in cases) == [1, 1, 1]
    assert all(c["position"] is None for c in cases)


def test_calibrated_cameras_merge_by_the_objects_position(api: Api, photos: list[bytes]) -> None:
    a, a_files = report(photos, camera="cam-1", at=HERE, position=placed(HERE, 20))
    b, b_files = report(photos, camera="cam-2", at=FAR, photo_offset=2,
                        position=placed(HERE, 22))  # fmt: skip
    first = post(api.ingest, a, a_files).json()
    r = post(api.ingest, b, b_files)  # the cameras are 1.1 km apart, the object 2 m
    assert r.status_code == 200 and r.json()["merged"] is True, r.text
    assert r.json()["case_id"] == first["case_id"]
    case = api.dispatch.get(f"/v1/cases/{first['case_id']}").json()
    assert case["position"] == placed(HERE, 20) and case["sources"] == ["cam-1", "cam-2"]
    # On the map the case is where the object is, not where its first camera stands.
    north = f"{HERE[1] - 0.0001},{HERE[0] + 0.0001},{HERE[1] + 0.0001},{HERE[0] + 0.0003}"
    assert [c["id"] for c in api.dispatch.get("/v1/cases", params={"bbox": north}).json()[
        "items"]] == [first["case_id"]]  # fmt: skip


def test_calibrated_positions_40_m_apart_are_two_cases(api: Api, photos: list[bytes]) -> None:
    # The cameras stand 11 m apart (within the old camera-distance rule); the objects 40 m.
    a, a_files = report(photos, camera="cam-1", at=HERE, position=placed(HERE))
    b, b_files = report(photos, camera="cam-2", at=NEARBY, photo_offset=2,
                        position=placed(HERE, 40))  # fmt: skip
    assert post(api.ingest, a, a_files).status_code == 201
    r = post(api.ingest, b, b_files)
    assert r.status_code == 201, r.text
    assert count_cases(api.dispatch) == 2


def test_one_calibrated_one_not_do_not_merge(api: Api, photos: list[bytes]) -> None:
    a, a_files = report(photos, camera="cam-1", at=HERE, position=placed(HERE))
    b, b_files = report(photos, camera="cam-2", at=HERE, photo_offset=2)  # same mast, no calib
    assert post(api.ingest, a, a_files).status_code == 201
    assert post(api.ingest, b, b_files).status_code == 201


def test_a_report_never_joins_a_case_it_does_not_overlap_on_its_own_camera(
    api: Api, photos: list[bytes]
) -> None:
    # The case holds cam-1's car and cam-2's view of it (calibrated, 1 m apart).
    a, a_files = report(photos, camera="cam-1", bbox=[100, 200, 300, 400], position=placed(HERE))
    b, b_files = report(photos, camera="cam-2", at=NEARBY, photo_offset=2,
                        position=placed(HERE, 1))  # fmt: skip
    case_id = post(api.ingest, a, a_files).json()["case_id"]
    assert post(api.ingest, b, b_files).json()["case_id"] == case_id
    # Another car on cam-1, in a box beside the first, whose ground point the calibration
    # puts within the distance of cam-2's: cam-1 sees two objects, so it is a new case.
    c, c_files = report(photos, camera="cam-1", bbox=[320, 200, 520, 400], photo_offset=4,
                        position=placed(HERE, 3))  # fmt: skip
    r = post(api.ingest, c, c_files)
    assert r.status_code == 201, r.text
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["report_count"] == 2


# -- a case never waits for a report nobody can finish (issue 12, item 1) -----------------


def test_a_newer_report_of_the_same_camera_and_zone_finishes_the_older(
    api: Api, photos: list[bytes]
) -> None:
    # A worker reported the bus (A), was killed and restarted without its state, and
    # reported the same bus again (B): same camera, zone and box. Nobody will clear A.
    a, a_files = report(photos, camera="cam-1", bbox=[100, 200, 300, 400])
    b, b_files = report(photos, camera="cam-1", bbox=[105, 205, 305, 405], photo_offset=2,
                        start=T0 + timedelta(minutes=4))  # fmt: skip
    case_id = post(api.ingest, a, a_files).json()["case_id"]
    r = post(api.ingest, b, b_files)
    assert r.status_code == 200 and r.json()["case_id"] == case_id, r.text
    cleared = (T0 + timedelta(minutes=9)).isoformat()
    r = patch(api.ingest, b.id, {"last_seen": cleared, "cleared_at": cleared})
    assert r.status_code == 200, r.text
    assert r.json()["cleared_at"] is not None and r.json()["cleared_at"].startswith(
        "2025-06-01T08:09"
    )
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert case["cleared_at"].startswith("2025-06-01T08:09")
    merged = case["history"][1]
    assert merged["kind"] == "merged" and merged["data"]["superseded"] == [a.id]


def test_another_cameras_open_report_still_holds_the_case(api: Api, photos: list[bytes]) -> None:
    # Supersession is per camera and zone: cam-2's view of it is not finished by cam-1's.
    a, a_files = report(photos, camera="cam-1", position=placed(HERE))
    b, b_files = report(photos, camera="cam-2", at=NEARBY, photo_offset=2,
                        position=placed(HERE, 1))  # fmt: skip
    c, c_files = report(photos, camera="cam-1", photo_offset=4, start=T0 + timedelta(minutes=4),
                        position=placed(HERE))  # fmt: skip
    case_id = post(api.ingest, a, a_files).json()["case_id"]
    assert post(api.ingest, b, b_files).json()["case_id"] == case_id
    assert post(api.ingest, c, c_files).json()["case_id"] == case_id
    cleared = (T0 + timedelta(minutes=9)).isoformat()
    assert patch(api.ingest, c.id, {"cleared_at": cleared}).json()["cleared_at"] is None
    done = patch(api.ingest, b.id, {"cleared_at": cleared}).json()
    assert done["cleared_at"].startswith("2025-06-01T08:09")


def test_a_superseded_report_seen_again_holds_the_case_again(api: Api, photos: list[bytes]) -> None:
    # Two reports of one camera and zone whose boxes overlap, and the older one is still
    # watched after the newer began: it was not lost, so its site must clear too.
    a, a_files = report(photos, camera="cam-1", bbox=[100, 200, 300, 400])
    b, b_files = report(photos, camera="cam-1", bbox=[150, 200, 350, 400], photo_offset=2,
                        start=T0 + timedelta(minutes=4))  # fmt: skip
    case_id = post(api.ingest, a, a_files).json()["case_id"]
    assert post(api.ingest, b, b_files).json()["case_id"] == case_id
    # A queued observation from before B began does not revive A ...
    early = (T0 + timedelta(minutes=3)).isoformat()
    patch(api.ingest, a.id, {"last_seen": early}).raise_for_status()
    # ... one after it does.
    late = (T0 + timedelta(minutes=8)).isoformat()
    patch(api.ingest, a.id, {"last_seen": late}).raise_for_status()
    cleared = (T0 + timedelta(minutes=9)).isoformat()
    assert patch(api.ingest, b.id, {"cleared_at": cleared}).json()["cleared_at"] is None
    done = patch(api.ingest, a.id, {"cleared_at": cleared}).json()
    assert done["cleared_at"].startswith("2025-06-01T08:09")
