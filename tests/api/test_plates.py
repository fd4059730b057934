"""Plates on parking cases at the API: stored, served, updated, merged by, never published.

Reports are posted over real HTTP to the real server on SQLite and PostgreSQL; the plate
texts are what a worker's plate stage sends (detector.plates), the images real photos."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.api.helpers import (
    FAR,
    NEARBY,
    T0,
    Api,
    all_changes,
    count_cases,
    is_problem,
    patch,
    post,
    report,
)


def parked(photos, plate: str | None, confidence: float | None = 0.97, **kw):
    """An uncalibrated camera's illegal_parking report (no object position) with a plate."""
    extra = {"plate": plate, "plate_confidence": confidence} if plate is not None else {}
    return report(photos, type_="illegal_parking", code="09009", **extra, **kw)


def test_the_same_plate_on_a_nearby_uncalibrated_camera_merges(api: Api, photos) -> None:
    a, a_files = parked(photos, "京A12345", camera="cam-north", bbox=[0, 0, 100, 60])
    b, b_files = parked(photos, "京A12345", 0.91, camera="cam-south", at=NEARBY,
                        start=T0 + timedelta(minutes=5), photo_offset=2)  # fmt: skip
    first = post(api.ingest, a, a_files, key="a").json()
    second = post(api.ingest, b, b_files, key="b").json()
    assert second["merged"] is True and second["case_id"] == first["case_id"]
    case = api.dispatch.get(f"/v1/cases/{first['case_id']}").json()
    assert case["plate"] == "京A12345" and case["plate_confidence"] == 0.97
    assert case["sources"] == ["cam-north", "cam-south"]
    # The change feed (and so the webhooks, which carry its entries) has the plate.
    assert {c["data"]["case"]["plate"] for c in all_changes(api.dispatch)} == {"京A12345"}

    # Far away (1.1 km), the same plate is another stop of the same car: another case.
    c, c_files = parked(photos, "京A12345", camera="cam-far", at=FAR, photo_offset=4)
    assert post(api.ingest, c, c_files, key="c").json()["merged"] is False


def test_without_plates_uncalibrated_cameras_never_merge(sqlite_api: Api, photos) -> None:
    """The rule the plate relaxes: two cameras 11 m apart without positions see two cars."""
    a, a_files = parked(photos, None, camera="cam-north")
    b, b_files = parked(photos, None, camera="cam-south", at=NEARBY, photo_offset=2)
    post(sqlite_api.ingest, a, a_files, key="a")
    assert post(sqlite_api.ingest, b, b_files, key="b").json()["merged"] is False


@pytest.mark.parametrize(
    ("second", "confidence", "merged"),
    [
        ("京A12346", 0.95, True),  # one character off, both sure: a misread of the same plate
        ("京A12346", 0.6, False),  # one character off, one read unsure: maybe another car
        ("京A12366", 0.99, False),  # two characters off: another car
        ("沪C33M21", 0.99, False),
    ],
)
def test_plates_one_character_apart_merge_only_when_both_are_sure(
    sqlite_api: Api, photos, second: str, confidence: float, merged: bool
) -> None:
    a, a_files = parked(photos, "京A12345", 0.96, camera="cam-north")
    b, b_files = parked(photos, second, confidence, camera="cam-south", at=NEARBY, photo_offset=2)
    post(sqlite_api.ingest, a, a_files, key="a")
    assert post(sqlite_api.ingest, b, b_files, key="b").json()["merged"] is merged


def test_different_plates_in_one_site_are_never_merged(sqlite_api: Api, photos) -> None:
    """One camera, overlapping boxes (a car behind another, or a car that left unseen and
    another that took the bay): different plates are two cases; the same plate is one."""
    a, a_files = parked(photos, "京A12345", bbox=[100, 100, 300, 250])
    b, b_files = parked(photos, "沪C33M21", bbox=[120, 110, 320, 260], photo_offset=2)
    c, c_files = parked(photos, "京A12345", bbox=[110, 100, 310, 250], photo_offset=4)
    first = post(sqlite_api.ingest, a, a_files, key="a").json()
    assert post(sqlite_api.ingest, b, b_files, key="b").json()["merged"] is False
    third = post(sqlite_api.ingest, c, c_files, key="c").json()
    assert third["merged"] is True and third["case_id"] == first["case_id"]
    assert count_cases(sqlite_api.dispatch) == 2


def test_an_observation_updates_the_plate(sqlite_api: Api, photos) -> None:
    """The worker's vote goes on over the dwell: a PATCH carries its latest plate."""
    a, a_files = parked(photos, None)
    case_id = post(sqlite_api.ingest, a, a_files).json()["case_id"]
    seen = (T0 + timedelta(minutes=3)).isoformat()
    r = patch(sqlite_api.ingest, a.id, {"last_seen": seen, "plate": "京A12345",
                                        "plate_confidence": 0.88})  # fmt: skip
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    case = sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert (case["plate"], case["plate_confidence"]) == ("京A12345", 0.88)
    assert case["history"][-1]["data"]["case"]["plate"] == "京A12345"


def test_bad_plates_are_refused_with_the_reason(sqlite_api: Api, photos) -> None:
    base, files = parked(photos, None)
    body = base.model_dump(mode="json")
    for bad, says in [
        ({"plate": "京A12345"}, "plate and plate_confidence come together"),
        ({"plate": "京a 123", "plate_confidence": 0.9}, "plate"),
        ({"plate": "京A12345", "plate_confidence": 1.5}, "plate_confidence"),
        (
            {"type": "street_stall", "event_code": "09006", "plate": "京A12345",
             "plate_confidence": 0.9},
            "only illegal_parking reports carry a plate",
        ),
    ]:  # fmt: skip
        r = post(sqlite_api.ingest, json.dumps(body | bad), files)
        problem = is_problem(r, 422)
        assert says in json.dumps(problem, ensure_ascii=False), problem
    # A plate on a stall's observation: refused, and the stall case unchanged.
    stall, s_files = report(photos)
    case_id = post(sqlite_api.ingest, stall, s_files).json()["case_id"]
    r = patch(sqlite_api.ingest, stall.id, {"plate": "京A12345", "plate_confidence": 0.9})
    is_problem(r, 422)
    assert sqlite_api.dispatch.get(f"/v1/cases/{case_id}").json()["plate"] is None
    assert count_cases(sqlite_api.dispatch) == 1
