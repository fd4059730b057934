"""监督评价: the statistics endpoints against figures this test computes itself from the
cases and histories the API serves."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.desk_setup import load_desk
from tests.api.helpers import Api, post, report
from tests.api.test_desk_dispatch import _move, placed_case

SE_OTHER = (30.2720, 120.1580)  # in SE, too far from HERE to merge
NE = (30.2770, 120.1570)


def _department_key(api: Api, department: str) -> httpx.Client:
    made = api.admin.post(
        "/v1/keys", json={"name": department, "scopes": ["department"], "department": department}
    ).raise_for_status()
    return httpx.Client(
        base_url=api.url, headers={"Authorization": f"Bearer {made.json()['key']}"}, timeout=30
    )


def _city(api: Api, photos: list[bytes]) -> None:
    """Cases down every path: closed, overdue, rejected, accepted only, sent back."""
    load_desk(api)
    closed = placed_case(api, photos)
    parking = placed_case(api, photos, camera="cam-2", at=SE_OTHER, photo_offset=2,
                          type_="illegal_parking", code="09009")  # fmt: skip
    west_r, files = report(photos, camera="cam-3", photo_offset=4)  # configured cell, west
    rejected = post(api.ingest, west_r, files).raise_for_status().json()["case_id"]
    accepted_only = placed_case(api, photos, camera="cam-4", at=NE, photo_offset=5)
    sent_back = placed_case(api, photos, camera="cam-5", at=NE, photo_offset=6,
                            type_="garbage", code="06010")  # fmt: skip
    for case_id in (closed, parking, accepted_only, sent_back):
        _move(api.dispatch, case_id, "accepted")
    _move(api.dispatch, rejected, "rejected", reason="false_detection")
    for case_id in (closed, parking, sent_back):
        _move(api.dispatch, case_id, "dispatched")
    with _department_key(api, "城管东中队") as east, _department_key(api, "环卫东所") as sanit:
        east.post(f"/v1/desk/department/cases/{closed}/resolve", json={"actor": "a"})
        sanit.post(f"/v1/desk/department/cases/{sent_back}/resolve", json={"actor": "b"})
    _move(api.dispatch, closed, "closed")
    _move(api.dispatch, sent_back, "dispatched")  # a reviewer's failed check


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, written out."""
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _expected(cases: list[dict[str, Any]], by: str, now: datetime) -> dict[str, dict[str, Any]]:
    field = {"department": "department", "type": "type", "camera": "camera_id"}.get(by)
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"counts": defaultdict(int), "times": defaultdict(list)}
    )
    for case in cases:
        if case["status"] == "duplicate":
            continue
        key = (case["location"]["grid"] if by == "grid" else case[field]) or "(none)"
        g = groups[key]
        moves = [(c["to_status"], datetime.fromisoformat(c["at"]))
                 for c in case["history"] if c["kind"] == "transition"]  # fmt: skip
        first = {}
        for to, at in moves:
            first.setdefault(to, at)
        resolutions = [at for to, at in moves if to == "resolved"]
        stood = (
            resolutions[-1] if resolutions and case["status"] in ("resolved", "closed") else None
        )
        deadline = datetime.fromisoformat(case["deadline"]) if case["deadline"] else None
        created = datetime.fromisoformat(case["created_at"])
        g["counts"]["reported"] += 1
        if "accepted" in first:
            g["counts"]["accepted"] += 1
            g["times"]["to_accept"].append((first["accepted"] - created).total_seconds())
        if "dispatched" in first:
            g["counts"]["dispatched"] += 1
            g["times"]["to_dispatch"].append(
                (first["dispatched"] - first["accepted"]).total_seconds()
            )
        if stood:
            g["counts"]["resolved"] += 1
            g["counts"]["resolved_on_time"] += bool(deadline and stood <= deadline)
            g["times"]["to_resolve"].append((stood - first["dispatched"]).total_seconds())
        if case["status"] == "closed":
            g["counts"]["closed"] += 1
            g["times"]["to_close"].append((first["closed"] - stood).total_seconds())
        if case["status"] == "dispatched" and deadline and deadline <= now:
            g["counts"]["overdue_now"] += 1
    return groups


@pytest.mark.parametrize("by", ["department", "grid", "type", "camera"])
def test_statistics_equal_what_the_histories_give(api: Api, photos: list[bytes], by: str) -> None:
    _city(api, photos)
    now = datetime.fromisoformat(api.dispatch.get("/v1/cases").json()["items"][0]["created_at"])
    later = now + timedelta(days=30)  # every deadline has passed on the server's clock
    api.server.app.state.ctx.clock.move_to(later)
    ids = [c["id"] for c in api.dispatch.get("/v1/cases", params={"limit": 500}).json()["items"]]
    cases = [api.dispatch.get(f"/v1/cases/{i}").raise_for_status().json() for i in ids]
    expected = _expected(cases, by, later)

    stats = api.dispatch.get("/v1/desk/stats", params={"by": by}).raise_for_status().json()
    assert stats["by"] == by
    assert [r["key"] for r in stats["rows"]] == sorted(expected)
    for row in stats["rows"]:
        want = expected[row["key"]]
        for name in ("reported", "accepted", "dispatched", "resolved", "resolved_on_time",
                     "closed", "overdue_now"):  # fmt: skip
            assert row[name] == want["counts"][name], (row["key"], name)
        c = want["counts"]
        assert row["acceptance_rate"] == round(c["accepted"] / c["reported"], 4)
        assert row["closure_rate"] == (round(c["closed"] / c["accepted"], 4) if c["accepted"]
                                       else None)  # fmt: skip
        for step in ("to_accept", "to_dispatch", "to_resolve", "to_close"):
            values = want["times"][step]
            got = row["times"][step]
            assert got["n"] == len(values)
            if values:
                assert got["median_s"] == pytest.approx(_percentile(values, 0.5), abs=1e-3)
                assert got["p90_s"] == pytest.approx(_percentile(values, 0.9), abs=1e-3)
            else:
                assert got["median_s"] is None

    table = api.dispatch.get("/v1/desk/stats.csv", params={"by": by})
    assert table.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(table.text)))
    assert [r[by] for r in parsed] == [r["key"] for r in stats["rows"]]
    for line, row in zip(parsed, stats["rows"], strict=True):
        assert int(line["overdue_now"]) == row["overdue_now"]
        assert int(line["closed"]) == row["closed"]
        assert line["to_accept_n"] == str(row["times"]["to_accept"]["n"])


def test_the_citys_figures_by_department(sqlite_api: Api, photos: list[bytes]) -> None:
    """The same city, read as a dispatcher would: who has what, and what is late."""
    api = sqlite_api
    _city(api, photos)
    rows = {r["key"]: r for r in api.dispatch.get("/v1/desk/stats").json()["rows"]}
    assert rows["城管东中队"]["closed"] == 1 and rows["城管东中队"]["resolved_on_time"] == 1
    assert rows["环卫东所"]["dispatched"] == 1 and rows["环卫东所"]["resolved"] == 0
    assert rows["市场监管所"]["accepted"] == 1 and rows["市场监管所"]["dispatched"] == 0
    assert rows["(none)"]["reported"] == 1 and rows["(none)"]["accepted"] == 0
    assert all(r["overdue_now"] == 0 for r in rows.values())  # nothing late yet
    api.server.app.state.ctx.clock.move_to(datetime.now().astimezone() + timedelta(days=30))
    rows = {r["key"]: r for r in api.dispatch.get("/v1/desk/stats").json()["rows"]}
    assert rows["交警东大队"]["overdue_now"] == 1 and rows["环卫东所"]["overdue_now"] == 1
    assert rows["城管东中队"]["overdue_now"] == 0
    bad = api.dispatch.get("/v1/desk/stats", params={"by": "reviewer"})
    assert bad.status_code == 422
    # Only cases opened in the window count; a window without an offset is refused.
    later = api.dispatch.get("/v1/desk/stats", params={"since": "2100-01-01T00:00:00Z"})
    assert later.json()["rows"] == []
    assert (
        api.dispatch.get("/v1/desk/stats", params={"until": "2100-01-01T00:00:00"}).status_code
        == 400
    )
