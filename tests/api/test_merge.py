"""Cross-report merging: one incident seen twice, or by two cameras, is one case."""

from __future__ import annotations

from datetime import timedelta

from tests.api.helpers import FAR, NEARBY, T0, Api, all_changes, count_cases, patch, post, report


def test_two_cameras_seeing_one_stall_make_one_case(api: Api, photos: list[bytes]) -> None:
    a, a_files = report(photos, camera="cam-north")
    b, b_files = report(photos, camera="cam-south", at=NEARBY, photo_offset=2,
                        start=T0 + timedelta(minutes=3))  # fmt: skip
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
    a, files = report(photos, camera="cam-1")
    assert post(api.ingest, a, files, key="a").status_code == 201
    far, files = report(photos, camera="cam-2", at=FAR)
    assert post(api.ingest, far, files, key="far").status_code == 201
    garbage, files = report(photos, camera="cam-3", at=NEARBY, type_="garbage", code="06010")
    assert post(api.ingest, garbage, files, key="garbage").status_code == 201
    later, files = report(photos, camera="cam-4", at=NEARBY, start=T0 + timedelta(hours=3))
    assert post(api.ingest, later, files, key="later").status_code == 201
    assert count_cases(api.dispatch) == 4


def test_no_merge_into_a_case_that_left_the_workflow(api: Api, photos: list[bytes]) -> None:
    a, files = report(photos)
    case_id = post(api.ingest, a, files, key="a").json()["case_id"]
    api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "rejected", "actor": "reviewer"}
    ).raise_for_status()
    b, files = report(photos, camera="cam-2", at=NEARBY)
    assert post(api.ingest, b, files, key="b").status_code == 201


def test_observations_and_clearing_of_a_merged_case(api: Api, photos: list[bytes]) -> None:
    a, a_files = report(photos, camera="cam-north")
    b, b_files = report(photos, camera="cam-south", at=NEARBY, photo_offset=2)
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
