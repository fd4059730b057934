"""Lifecycle transitions: allowed ones recorded in history, the rest refused with 409."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import Api, is_problem, post, report


def _move(client: httpx.Client, case_id: str, to: str, **extra: Any) -> httpx.Response:
    body = {"to": to, "actor": "zhang.wei", "note": f"to {to}", **extra}
    return client.post(f"/v1/cases/{case_id}/transitions", json=body)


def _new_case(api: Api, photos: list[bytes], **kw: Any) -> str:
    case, files = report(photos, **kw)
    return post(api.ingest, case, files, key=case.id).raise_for_status().json()["case_id"]


def test_full_workflow_is_recorded(api: Api, photos: list[bytes]) -> None:
    case_id = _new_case(api, photos)
    for to in ("accepted", "dispatched", "resolved", "dispatched", "resolved", "closed"):
        r = _move(api.dispatch, case_id, to)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == to
    history = api.dispatch.get(f"/v1/cases/{case_id}").json()["history"]
    moves = [(h["from_status"], h["to_status"]) for h in history if h["kind"] == "transition"]
    assert moves == [
        ("reported", "accepted"),
        ("accepted", "dispatched"),
        ("dispatched", "resolved"),
        ("resolved", "dispatched"),  # verification failed
        ("dispatched", "resolved"),
        ("resolved", "closed"),
    ]
    assert all(h["actor"] == "zhang.wei" and h["note"] and h["at"] for h in history[1:])
    assert history[0]["actor"] == "key:ingest"


def test_out_of_order_transition_is_409_and_changes_nothing(api: Api, photos: list[bytes]) -> None:
    case_id = _new_case(api, photos)
    before = api.dispatch.get(f"/v1/cases/{case_id}").json()
    body = is_problem(_move(api.dispatch, case_id, "closed"), 409)
    assert body["current_status"] == "reported"
    assert body["allowed"] == ["accepted", "duplicate", "rejected"]
    is_problem(_move(api.dispatch, case_id, "resolved"), 409)
    assert api.dispatch.get(f"/v1/cases/{case_id}").json() == before
    _move(api.dispatch, case_id, "rejected").raise_for_status()
    is_problem(_move(api.dispatch, case_id, "accepted"), 409)  # final


def test_expected_status_guards_concurrent_reviewers(api: Api, photos: list[bytes]) -> None:
    case_id = _new_case(api, photos)
    assert _move(api.dispatch, case_id, "accepted", expected_status="reported").status_code == 200
    body = is_problem(_move(api.dispatch, case_id, "rejected", expected_status="reported"), 409)
    assert body["type"].endswith("status-conflict")


def test_duplicate_needs_another_case(api: Api, photos: list[bytes]) -> None:
    from tests.api.helpers import FAR

    one = _new_case(api, photos)
    two = _new_case(api, photos, camera="cam-far", at=FAR)
    is_problem(_move(api.dispatch, two, "duplicate"), 422)
    is_problem(_move(api.dispatch, two, "duplicate", duplicate_of=two), 422)
    is_problem(_move(api.dispatch, two, "accepted", duplicate_of=one), 422)
    r = _move(api.dispatch, two, "duplicate", duplicate_of=one)
    assert r.status_code == 200 and r.json()["duplicate_of"] == one


def test_bad_transition_body_is_422(api: Api, photos: list[bytes]) -> None:
    case_id = _new_case(api, photos)
    is_problem(api.dispatch.post(f"/v1/cases/{case_id}/transitions", json={"to": "flying"}), 422)
    is_problem(api.dispatch.post(f"/v1/cases/{case_id}/transitions", content=b"{oops"), 422)
    is_problem(_move(api.dispatch, "cs_missing", "accepted"), 404)


def test_duplicate_is_a_real_merge(api: Api, photos: list[bytes]) -> None:
    from datetime import timedelta

    from tests.api.helpers import FAR, T0, all_changes, patch

    a, a_files = report(photos, camera="cam-1")
    # B: the same stall from a camera far off, uncalibrated, so intake could not merge it;
    # it shares one image with A (the same photo sent twice), which must not count twice.
    b, b_files = report(photos, camera="cam-far", at=FAR, photo_offset=1, n_evidence=3)
    one = post(api.ingest, a, a_files).raise_for_status().json()["case_id"]
    two = post(api.ingest, b, b_files).raise_for_status().json()["case_id"]
    assert one != two
    r = _move(api.dispatch, two, "duplicate", duplicate_of=one)
    assert r.status_code == 200, r.text
    assert r.json()["duplicate_of"] == one and r.json()["report_count"] == 0

    case = api.dispatch.get(f"/v1/cases/{one}").json()
    assert case["report_count"] == 2 and case["report_ids"] == [a.id, b.id]
    assert case["sources"] == ["cam-1", "cam-far"]
    assert len({e["sha256"] for e in case["evidence"]}) == len(case["evidence"]) == 4
    merged = case["history"][-1]
    assert merged["kind"] == "merged" and merged["data"]["merged_case"] == two
    assert merged["data"]["report_ids"] == [b.id] and merged["actor"] == "zhang.wei"
    dup = api.dispatch.get(f"/v1/cases/{two}").json()
    assert dup["status"] == "duplicate" and dup["evidence"] == [] and dup["report_count"] == 0
    assert dup["history"][-1]["data"]["moved_report_ids"] == [b.id]

    # Later observations of B's report reach A, by report id and by B's case id.
    later = (T0 + timedelta(minutes=20)).isoformat()
    r = patch(api.ingest, b.id, {"last_seen": later})
    assert r.status_code == 200 and r.json()["case_id"] == one, r.text
    assert api.dispatch.get(f"/v1/cases/{one}").json()["last_seen"].startswith("2025-06-01T08:20")
    cleared = (T0 + timedelta(minutes=25)).isoformat()
    patch(api.ingest, a.id, {"cleared_at": cleared}).raise_for_status()
    r = patch(api.ingest, two, {"cleared_at": cleared})
    assert r.status_code == 200 and r.json()["case_id"] == one, r.text
    assert r.json()["cleared_at"] is not None

    feed = [(c["kind"], c["case_id"]) for c in all_changes(api.dispatch)]
    assert feed[2:4] == [("transition", two), ("merged", one)]
    merged_event = next(c for c in all_changes(api.dispatch) if c["kind"] == "merged")
    assert merged_event["event_type"] == "case.merged"
    assert merged_event["data"]["case"]["report_count"] == 2
