"""Dispatch with a deadline: the routed department proposed on accept, recorded on dispatch
with its deadline, named in the feed, webhooks and Open311; overdue on an injected clock,
announced once; department keys that see and resolve only their own cases."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from api.server.desk import check_deadlines
from api.server.routing import parse
from api.server.settings import Settings
from tests.api.conftest import make_api
from tests.api.desk_setup import ROUTING, load_desk
from tests.api.helpers import HERE, Api, all_changes, is_problem, post, report


@pytest.fixture
def desk_api(settings: Settings) -> Iterator[Api]:
    yield from make_api(settings.model_copy(update={"overdue_poll_s": 0.05}))


def _move(client: httpx.Client, case_id: str, to: str, **extra: Any) -> dict[str, Any]:
    r = client.post(f"/v1/cases/{case_id}/transitions", json={"to": to, "actor": "王科长", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def placed_case(
    api: Api, photos: list[bytes], camera: str = "cam-1", at: tuple[float, float] = HERE, **kw: Any
) -> str:
    """A case whose calibrated camera placed its object `at` (HERE: grid cell SE)."""
    r, files = report(photos, camera=camera, position={"lat": at[0], "lon": at[1]}, **kw)
    return post(api.ingest, r, files).raise_for_status().json()["case_id"]


def _until(what: Callable[[], Any], timeout_s: float = 20) -> Any:
    """Poll for something the server does on its own (the deadline watch), not a deadline."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if value := what():
            return value
        time.sleep(0.05)
    raise AssertionError("the server did not get there")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_dispatch_records_department_and_deadline_then_overdue_once(
    desk_api: Api, photos: list[bytes]
) -> None:
    api = desk_api
    load_desk(api)
    hook = (
        api.admin.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": ["case.overdue"]}
        )
        .raise_for_status()
        .json()
    )
    case_id = placed_case(api, photos)
    accepted = _move(api.dispatch, case_id, "accepted")
    assert accepted["department"] == "城管东中队" and accepted["deadline"] is None
    dispatched = _move(api.dispatch, case_id, "dispatched")
    assert dispatched["department"] == "城管东中队" and dispatched["urgency"] == "normal"
    # Two working hours from dispatch on the city's calendar, computed here independently.
    expected = parse(ROUTING).calendar.add_working_hours(_at(dispatched["dispatched_at"]), 2)
    assert _at(dispatched["deadline"]) == expected and not dispatched["overdue"]

    history = api.dispatch.get(f"/v1/cases/{case_id}").json()["history"]
    assert history[-2]["data"]["proposed_department"] == "城管东中队"
    assert history[-1]["data"]["department"] == "城管东中队"
    assert history[-1]["data"]["case"]["deadline"] == dispatched["deadline"]
    [open311] = api.dispatch.get(f"/open311/v2/requests/{case_id}.json").json()
    assert open311["agency_responsible"] == "城管东中队"
    assert _at(open311["expected_datetime"]) == expected

    assert api.dispatch.get("/v1/cases", params={"overdue": True}).json()["items"] == []
    # The deadline passes on the server's clock: no waiting for it.
    api.server.app.state.ctx.clock.move_to(expected + timedelta(minutes=1))
    overdue = _until(
        lambda: [c for c in all_changes(api.dispatch, page=50) if c["kind"] == "overdue"]
    )
    assert [c["case_id"] for c in overdue] == [case_id]
    assert overdue[0]["event_type"] == "case.overdue"
    assert overdue[0]["data"]["department"] == "城管东中队"
    assert overdue[0]["data"]["case"]["overdue"] is True
    [listed] = api.dispatch.get("/v1/cases", params={"overdue": True}).json()["items"]
    assert listed["id"] == case_id and listed["overdue"] is True
    assert api.dispatch.get("/v1/cases", params={"overdue": False}).json()["items"] == []
    # Once: further passes of the watch announce nothing more.
    ctx = api.server.app.state.ctx
    assert check_deadlines(ctx.db, ctx.metrics) == []
    assert sum(c["kind"] == "overdue" for c in all_changes(api.dispatch, page=50)) == 1
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'streetwatch_cases_overdue{department="城管东中队"} 1.0' in metrics
    deliveries = api.admin.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
    assert [d["change_seq"] for d in deliveries] == [overdue[0]["seq"]]


def test_dispatch_to_a_named_department_with_urgency(api: Api, photos: list[bytes]) -> None:
    load_desk(api)
    case_id = placed_case(api, photos)
    _move(api.dispatch, case_id, "accepted")
    out = _move(api.dispatch, case_id, "dispatched", department="市场监管所", urgency="urgent")
    assert out["department"] == "市场监管所" and out["urgency"] == "urgent"
    assert _at(out["deadline"]) == _at(out["dispatched_at"]) + timedelta(hours=1)
    changes = all_changes(api.dispatch, page=50)
    assert changes[-1]["data"]["department"] == "市场监管所"
    assert (
        api.dispatch.get("/v1/cases", params={"department": "市场监管所"}).json()["items"][0]["id"]
        == case_id
    )


def test_no_route_needs_a_named_department(api: Api, photos: list[bytes]) -> None:
    load_desk(api)
    r, files = report(photos, at=None)  # no position, no configured grid
    case_id = post(api.ingest, r, files).raise_for_status().json()["case_id"]
    assert _move(api.dispatch, case_id, "accepted")["department"] is None
    refused = api.dispatch.post(
        f"/v1/cases/{case_id}/transitions", json={"to": "dispatched", "actor": "x"}
    )
    assert is_problem(refused, 422)["type"].endswith(":no-department")
    assert api.dispatch.get(f"/v1/cases/{case_id}").json()["status"] == "accepted"
    wrong = api.dispatch.post(
        f"/v1/cases/{case_id}/transitions",
        json={"to": "rejected", "actor": "x", "department": "城管西中队"},
    )
    is_problem(wrong, 422)
    out = _move(api.dispatch, case_id, "dispatched", department="城管西中队")
    assert out["department"] == "城管西中队" and out["deadline"] is not None


def test_department_keys_see_and_resolve_only_their_cases(api: Api, photos: list[bytes]) -> None:
    load_desk(api)
    east = placed_case(api, photos)
    west_r, files = report(photos, camera="cam-2", photo_offset=3)  # configured cell: west
    west = post(api.ingest, west_r, files).raise_for_status().json()["case_id"]
    # Also in SE, far enough from the first not to merge with it.
    undispatched = placed_case(api, photos, camera="cam-3", at=(30.2720, 120.1580), photo_offset=5)
    _move(api.dispatch, undispatched, "accepted")  # proposed to 城管东中队, not sent yet
    for case_id in (east, west):
        _move(api.dispatch, case_id, "accepted")
        _move(api.dispatch, case_id, "dispatched")
    made = api.admin.post(
        "/v1/keys", json={"name": "东中队", "scopes": ["department"], "department": "城管东中队"}
    )
    assert made.status_code == 201 and made.json()["department"] == "城管东中队"
    is_problem(api.admin.post("/v1/keys", json={"name": "x", "scopes": ["department"]}), 422)
    is_problem(
        api.admin.post("/v1/keys", json={"name": "x", "scopes": ["dispatch"], "department": "y"}),
        422,
    )
    dept = httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {made.json()['key']}"}, timeout=30
    )
    with dept:
        mine = dept.get("/v1/desk/department/cases").raise_for_status().json()["items"]
        assert [c["id"] for c in mine] == [east]
        is_problem(dept.get(f"/v1/desk/department/cases/{west}"), 404)
        is_problem(dept.get(f"/v1/desk/department/cases/{undispatched}"), 404)
        is_problem(dept.post(f"/v1/desk/department/cases/{west}/resolve", json={"actor": "a"}), 404)
        is_problem(dept.get(f"/v1/cases/{west}"), 403)  # not a reviewer's key
        done = dept.post(f"/v1/desk/department/cases/{east}/resolve", json={"actor": "李队员"})
        assert done.status_code == 200 and done.json()["status"] == "resolved", done.text
        again = dept.post(f"/v1/desk/department/cases/{east}/resolve", json={"actor": "李队员"})
        is_problem(again, 409)
    is_problem(api.dispatch.get("/v1/desk/department/cases"), 403)
    last = api.dispatch.get(f"/v1/cases/{east}").json()["history"][-1]
    assert last["actor"] == "李队员" and last["data"]["department"] == "城管东中队"
    assert api.dispatch.get(f"/v1/cases/{west}").json()["status"] == "dispatched"


def test_the_case_page_shows_department_deadline_and_overdue(
    sqlite_api: Api, photos: list[bytes]
) -> None:
    from tests.api.test_console import sign_in

    api = sqlite_api
    load_desk(api)
    case_id = placed_case(api, photos)
    _move(api.dispatch, case_id, "accepted")
    browser, _ = sign_in(api, api.server.create_key("dispatch", name="审核"))
    try:
        page = browser.get(f"/console/cases/{case_id}").text
        assert "城管东中队 (建议)" in page and 'id="deadline"' not in page
        out = _move(api.dispatch, case_id, "dispatched")
        page = browser.get(f"/console/cases/{case_id}").text
        assert "城管东中队</td>" in page and "处置时限" in page and "超期" not in page
        api.server.app.state.ctx.clock.move_to(_at(out["deadline"]) + timedelta(seconds=1))
        page = browser.get(f"/console/cases/{case_id}").text
        assert '<span class="badge overdue">超期</span>' in page
        queue = browser.get("/console", params={"status": "dispatched"}).text
        assert '<span class="badge overdue">超期</span>' in queue and "城管东中队" in queue
    finally:
        browser.close()


def test_every_time_the_desk_records_is_on_the_servers_clock(api: Api, photos: list[bytes]) -> None:
    """Past the deadline on the server's clock, a resolution is late: its time, the case's
    `resolved_at` and 按期处置 all say so; a case dispatched then starts its deadline then."""
    load_desk(api)
    late = placed_case(api, photos)
    prompt = placed_case(api, photos, camera="cam-3", at=(30.2720, 120.1580), photo_offset=5)
    for case_id in (late, prompt):
        _move(api.dispatch, case_id, "accepted")
    out = _move(api.dispatch, late, "dispatched", urgency="urgent")
    deadline = _at(out["deadline"])
    moved = deadline + timedelta(minutes=10)
    api.server.app.state.ctx.clock.move_to(moved)

    resolved = _move(api.dispatch, late, "resolved", note="已处理")
    assert _at(resolved["resolved_at"]) >= moved and _at(resolved["updated_at"]) >= moved
    resolution = api.dispatch.get(f"/v1/cases/{late}").json()["history"][-1]
    assert resolution["to_status"] == "resolved" and _at(resolution["at"]) >= moved
    # Dispatched now: its deadline runs from the server's now, and it is resolved in time.
    again = _move(api.dispatch, prompt, "dispatched", urgency="urgent")
    assert _at(again["dispatched_at"]) >= moved
    assert _at(again["deadline"]) == _at(again["dispatched_at"]) + timedelta(hours=1)
    _move(api.dispatch, prompt, "resolved")

    [row] = api.dispatch.get("/v1/desk/stats").json()["rows"]
    assert (row["key"], row["dispatched"], row["resolved"]) == ("城管东中队", 2, 2)
    assert row["resolved_on_time"] == 1 and row["on_time_rate"] == 0.5
    to_resolve = row["times"]["to_resolve"]
    assert to_resolve["n"] == 2 and to_resolve["p90_s"] > timedelta(hours=1).total_seconds()
