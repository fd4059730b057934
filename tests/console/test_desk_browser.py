"""The dispatch desk in a real browser (Debian's chromium) against a real `streetwatch serve`,
with cases from real footage (`streetwatch score --post`, tests/console/scenes.py).

The city loads its grid (the CLI) and routing table (the admin API); a calibrated camera's
bus is placed in a cell and routed to that cell's department; a dispatcher accepts it and
dispatches it from the case page with the proposed department; the deadline passes on the
server's one clock (moved, no waiting) and the case is overdue in the queue, on the map and
in the statistics; the department resolves it with its own key, late on that clock, while
the camera still sees the bus, so it comes back not verified; the camera then reports the
bay empty (a real `score --post` of footage where the bus drives off) and the case is
verified; the department resolves it again and the dispatcher closes it with one key. The
statistics the console shows (page and CSV) equal those computed here from the API's case
histories: the late resolution is not on time (按期处置率 0%), each person is one row by
name, and the server's own notes read in Chinese. Screenshots of every page land in the
test's tmp dir (and $STREETWATCH_SCREENSHOTS).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.client.intake import IntakeClient
from api.contract import Observation
from api.server.settings import Settings
from streams.cli import main
from tests.console.scenes import BAY_A, BAY_B, RULES, bus_a_leaves, camera, two_bays
from tests.console.tiles import TileServer
from tests.support.api import run_server
from tests.support.testcam import wait_until

pytestmark = pytest.mark.timeout(600)

LON, LAT = 101.72, 26.58  # cam-1 stands here, looking north up the street
# Image points of the street surface in cam-1's 768 x 576 frame and where they lie: the
# near edge about 10 m north of the camera, the far one about 50 m.
CALIBRATION = {
    "points": [
        {"image": [0, 576], "lat": 26.58009, "lon": 101.71985},
        {"image": [768, 576], "lat": 26.58009, "lon": 101.72015},
        {"image": [0, 300], "lat": 26.58045, "lon": 101.7196},
        {"image": [768, 300], "lat": 26.58045, "lon": 101.7204},
    ]
}


def _cell(code: str, name: str, lon0: float, lat0: float, lon1: float, lat1: float) -> dict:
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return {
        "type": "Feature",
        "properties": {"code": code, "parent": "炳草岗", "name": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


# The left bay lies in 001, the right one in 004; cam-2 (uncalibrated) is configured in 002.
GRID = {
    "type": "FeatureCollection",
    "features": [
        _cell("510402001001", "大街西", 101.7190, 26.5795, 101.7200, 26.5810),
        _cell("510402001004", "大街东", 101.7200, 26.5795, 101.7210, 26.5810),
        _cell("510402001002", "北段", 101.7190, 26.5810, 101.7210, 26.5825),
    ],
}
ROUTING = {
    "routes": [
        {"area": "510402001001", "type": "illegal_parking", "department": "交警一大队"},
        {"area": "510402001004", "type": "illegal_parking", "department": "交警二大队"},
        {"area": "炳草岗", "type": None, "department": "城管炳草岗中队"},
    ],
    "deadlines": [
        {"type": "illegal_parking", "hours": 1},
        {"type": "street_stall", "hours": 2, "working": True},
        {"type": "garbage", "hours": 4, "working": True},
    ],
}
DEPARTMENT = "交警一大队"


@pytest.fixture(scope="module")
def street(tmp_path_factory, vtest_avi, bus_jpg, rtsp_server_deps) -> Path:
    return two_bays(tmp_path_factory.mktemp("desk") / "two_bays.mp4", vtest_avi, bus_jpg)


@pytest.fixture(scope="module")
def leaving(tmp_path_factory, vtest_avi, bus_jpg, rtsp_server_deps) -> Path:
    return bus_a_leaves(tmp_path_factory.mktemp("desk") / "a_leaves.mp4", vtest_avi, bus_jpg)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def score_post(out: Path, cams: list[dict], url: str, key: str, monkeypatch) -> None:
    """`streetwatch score --post`: what the cameras saw goes to the API as a worker sends it."""
    out.mkdir(parents=True)
    config = out / "score.yaml"
    config.write_text(yaml.safe_dump({"model": "default", "rules": RULES, "cameras": cams}))
    monkeypatch.setenv("STREETWATCH_API_KEY", key)
    argv = ["score", "--config", str(config), "--out", str(out / "cases.jsonl"),
            "--evidence-dir", str(out / "evidence"), "--post", url]  # fmt: skip
    assert main(argv) == 0


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def cases(self) -> list[dict]:
        return self.http.get("/v1/cases", params={"limit": 500}).raise_for_status().json()["items"]

    def case(self, case_id: str) -> dict:
        return self.http.get(f"/v1/cases/{case_id}").raise_for_status().json()


# -- the statistics, computed here from the API's case histories ---------------------------


def department_figures(cases: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """监督评价 per department from the histories (api/server/desk_stats.py defines them)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in cases:
        if c["status"] == "duplicate":
            continue
        moves = [h for h in c["history"] if h["kind"] == "transition"]
        to = [h["to_status"] for h in moves]
        row = out[c["department"] or "(none)"]
        row["reported"] += 1
        row["accepted"] += "accepted" in to
        row["dispatched"] += "dispatched" in to
        resolutions = [h["at"] for h in moves if h["to_status"] == "resolved"]
        if resolutions and c["status"] in ("resolved", "closed"):
            row["resolved"] += 1
            stood = datetime.fromisoformat(resolutions[-1])
            on_time = c["deadline"] and stood <= datetime.fromisoformat(c["deadline"])
            row["resolved_on_time"] += bool(on_time)
        row["closed"] += c["status"] == "closed"
        row["overdue_now"] += c["overdue"]
    return out


def reviewer_figures(cases: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Decisions per person (status changes made with a key) and what became of them."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in cases:
        for h in c["history"]:
            if h["kind"] != "transition" or not h["api_key_id"]:
                continue
            row, decision = out[h["actor"]], h["to_status"]
            row[decision] += 1
            row["total"] += 1
            if decision in ("rejected", "duplicate"):
                site = (c["type"], c["camera_id"], c["zone_id"])
                again = [
                    o for o in cases
                    if (o["type"], o["camera_id"], o["zone_id"]) == site
                    and datetime.fromisoformat(o["created_at"]) > datetime.fromisoformat(h["at"])
                ]  # fmt: skip
                row[f"{decision}_re_reported"] += bool(again)
                continue
            row[f"{decision}_closed"] += c["status"] == "closed"
            back = [
                later for later in c["history"]
                if later["seq"] > h["seq"] and later["kind"] == "transition"
                and later["data"].get("verification") == "not_verified"
            ]  # fmt: skip
            row[f"{decision}_not_verified"] += bool(back)
    return out


def shown(page, row: str, columns: list[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {c: int(page.inner_text(f"{row} td[data-col='{c}']")) for c in columns}


def flash(page) -> str:  # type: ignore[no-untyped-def]
    return page.inner_text("#flash")


def press_and_wait(page, key: str) -> None:  # type: ignore[no-untyped-def]
    with page.expect_navigation():
        page.keyboard.press(key)


COUNTS = ["reported", "accepted", "dispatched", "resolved", "resolved_on_time", "closed",
          "overdue_now"]  # fmt: skip


def on_time_rate(row: dict[str, int]) -> float | None:
    """按期处置率: resolved on time / dispatched (api/server/desk_stats.py)."""
    return round(row["resolved_on_time"] / row["dispatched"], 4) if row["dispatched"] else None


def check_department_stats(page, url: str, api: Api) -> dict[str, dict[str, int]]:  # type: ignore[no-untyped-def]
    """The page and its CSV give what the histories give: the counts and 按期处置率."""
    figures = department_figures([api.case(c["id"]) for c in api.cases()])
    page.goto(f"{url}/console/supervision?by=department")
    listed = page.eval_on_selector_all(
        "#supervision-table tr[data-key]", "rs => rs.map(r => r.dataset.key)"
    )
    assert sorted(listed) == sorted(figures)
    response = page.request.get(f"{url}/console/supervision.csv?by=department")
    assert response.ok
    table = {r["department"]: r for r in csv.DictReader(io.StringIO(response.text()))}
    assert sorted(table) == sorted(figures)
    for department, want in figures.items():
        row = f"#supervision-table tr[data-key='{department}']"
        assert shown(page, row, COUNTS) == {c: want.get(c, 0) for c in COUNTS}, department
        assert {c: int(table[department][c]) for c in COUNTS} == {
            c: want.get(c, 0) for c in COUNTS
        }, department
        rate = on_time_rate(want)
        assert page.inner_text(f"{row} td[data-col='on_time_rate']") == (
            "—" if rate is None else f"{rate * 100:.0f}%"
        ), department
        assert table[department]["on_time_rate"] == ("" if rate is None else str(rate))
    return figures


def test_dispatch_desk_end_to_end(
    browser, screenshots, street, leaving, default_model, tmp_path, monkeypatch
):
    data = tmp_path / "api"
    with (
        TileServer() as tiles,
        run_server(
            Settings(
                data_dir=data, overdue_poll_s=0.2, verify_clear_s=0, map_tile_url=tiles.template
            )
        ) as server,
    ):
        url = server.url
        admin = Api(url, server.create_key("admin", name="city-admin"))
        ingest = server.create_key("ingest", name="worker-1")
        api = Api(url, server.create_key("dispatch", name="李审核"))
        dispatcher = server.create_key("dispatch", name="张调度")

        # -- the city's grid (the CLI, on the server's database) and routing (the admin API)
        grid_file = tmp_path / "grid.geojson"
        grid_file.write_text(json.dumps(GRID, ensure_ascii=False), encoding="utf-8")
        assert main(["desk", "grid", "--data-dir", str(data), str(grid_file)]) == 0
        admin.http.put("/v1/desk/routing", json=ROUTING).raise_for_status()

        # -- real footage: cam-1 (calibrated) sees both bays, cam-2 one bay up the street --
        start = datetime.now(UTC) - timedelta(seconds=90)
        cam1 = camera(
            "cam-1",
            str(street),
            {"bay-a": BAY_A, "bay-b": BAY_B},
            LAT,
            "510402001001",
            start_time=_iso(start),
            calibration=CALIBRATION,
        )
        cam2 = camera("cam-2", str(street), {"bay": BAY_B}, 26.5815, "510402001002",
                      start_time=_iso(start + timedelta(seconds=5)))  # fmt: skip
        score_post(tmp_path / "score-1", [cam1, cam2], url, ingest, monkeypatch)
        scored = api.cases()
        assert len(scored) == 5
        (a,) = [c for c in scored if c["zone_id"] == "bay-a"]
        assert a["position"] is not None and a["location"]["grid"] == "510402001001"
        right = [c for c in scored if c["camera_id"] == "cam-1" and c["zone_id"] == "bay-b"]
        assert {c["location"]["grid"] for c in right} == {"510402001004"}  # placed, not configured
        c1, c2 = sorted(
            (c for c in scored if c["camera_id"] == "cam-2"), key=lambda c: c["first_seen"]
        )
        a_id = a["id"]
        # Another reviewer's verdicts (for the per-reviewer figures): one accepted, one rejected.
        for case, body in (
            (c1, {"to": "accepted"}),
            (c2, {"to": "rejected", "reason": "false_detection"}),
        ):
            api.http.post(
                f"/v1/cases/{case['id']}/transitions", json={**body, "actor": "李审核"}
            ).raise_for_status()

        # -- the dispatcher accepts bus A: its cell's department is proposed --------------
        page = browser.new_page()
        page.goto(f"{url}/console/login")
        page.fill("#key", dispatcher)
        with page.expect_navigation():
            page.click(".login button[type=submit]")
        page.goto(f"{url}/console/cases/{a_id}")
        press_and_wait(page, "a")
        assert "已立案" in flash(page)
        page.goto(f"{url}/console/cases/{a_id}")
        assert page.inner_text("#department") == f"{DEPARTMENT} (建议)"
        # the object's own place, from the calibration, not the camera's
        assert page.inner_text("#position") == "{lat:.6f}, {lon:.6f}".format(**a["position"])
        assert page.eval_on_selector("#department-picker", "s => s.value") == DEPARTMENT
        options = page.eval_on_selector_all(
            "#department-picker option", "os => os.map(o => o.value)"
        )
        assert sorted(options) == sorted({r["department"] for r in ROUTING["routes"]})
        screenshots(page, "case-accepted-picker")
        page.keyboard.press("p")
        page.keyboard.type("占道停车，请处理")
        press_and_wait(page, "Enter")
        assert "已派遣" in flash(page)
        dispatched = api.case(a_id)
        assert (dispatched["status"], dispatched["department"]) == ("dispatched", DEPARTMENT)
        deadline = datetime.fromisoformat(dispatched["deadline"])
        assert (
            timedelta(minutes=59)
            < deadline - datetime.fromisoformat(dispatched["dispatched_at"])
            <= timedelta(hours=1)
        )
        assert not dispatched["overdue"]
        assert page.inner_text("#department") == DEPARTMENT

        # -- the deadline passes on the server's clock: overdue, announced once ------------
        server.app.state.ctx.clock.move_to(deadline + timedelta(minutes=5))
        wait_until(
            lambda: any(h["kind"] == "overdue" for h in api.case(a_id)["history"]),
            20,
            "the overdue watch announcing the case",
        )
        assert api.case(a_id)["overdue"]

        # the queue
        page.goto(f"{url}/console?status=dispatched")
        assert page.eval_on_selector_all(
            "#cases tbody tr", "rs => rs.map(r => r.dataset.case)"
        ) == [a_id]
        assert "超期" in page.inner_text(f"#cases tr[data-case='{a_id}']")
        assert DEPARTMENT in page.inner_text(f"#cases tr[data-case='{a_id}']")
        screenshots(page, "queue-overdue")

        # the map: cells, cameras (cam-1 calibrated: its view cone), open cases, the tiles
        page.goto(f"{url}/console/map")
        cells = page.eval_on_selector_all("svg.map path.cell", "ps => ps.map(p => p.dataset.cell)")
        assert sorted(cells) == sorted(f["properties"]["code"] for f in GRID["features"])
        assert (
            page.get_attribute("svg.map g.camera[data-camera='cam-1']", "class")
            == "camera calibrated"
        )
        heading = float(page.get_attribute("svg.map g.camera[data-camera='cam-1']", "data-heading"))
        assert heading < 20 or heading > 340  # it looks north up the street
        assert (
            page.get_attribute("svg.map g.camera[data-camera='cam-2']", "class")
            == "camera uncalibrated"
        )
        on_map = page.eval_on_selector_all("svg.map a.case", "as => as.map(a => a.dataset.case)")
        still_open = [
            c["id"] for c in api.cases() if c["status"] in ("reported", "accepted", "dispatched")
        ]
        assert sorted(on_map) == sorted(still_open) and c2["id"] not in on_map
        assert page.eval_on_selector_all(
            "svg.map a.case.overdue", "as => as.map(a => a.dataset.case)"
        ) == [a_id]
        assert page.inner_text("#map-overdue") == "超期 1"
        wait_until(lambda: len(tiles.served) >= 1, 10, "the city's tiles requested")
        assert len(tiles.served) == page.eval_on_selector_all(
            "svg.map g.tiles image", "i => i.length"
        )
        # cam-2 did not place its case: it is drawn dashed beside the camera, not over it
        c1_dot = f"svg.map a.case[data-case='{c1['id']}']"
        assert "at-camera" in page.get_attribute(c1_dot, "class")
        camera_at = page.eval_on_selector(
            "svg.map g.camera[data-camera='cam-2'] rect.cam",
            "r => [r.x.baseVal.value + 6, r.y.baseVal.value + 6]",
        )
        dot_at = page.eval_on_selector(
            f"{c1_dot} circle.dot", "c => [c.cx.baseVal.value, c.cy.baseVal.value]"
        )
        assert math.dist(camera_at, dot_at) >= 20
        screenshots(page, "map-overdue")
        # the queue's filters apply: cam-2 only
        page.goto(f"{url}/console/map?camera=cam-2")
        assert page.eval_on_selector_all("svg.map a.case", "as => as.map(a => a.dataset.case)") == [
            c1["id"]
        ]
        # clicking a case on the map opens it
        page.goto(f"{url}/console/map")
        with page.expect_navigation():
            page.click(f"svg.map a.case[data-case='{a_id}'] circle.dot")
        assert page.url.split("?")[0].endswith(f"/console/cases/{a_id}")
        assert "超期" in page.inner_text("#deadline")
        screenshots(page, "case-overdue")

        # the statistics: the department's case overdue now, as the histories say
        figures = check_department_stats(page, url, api)
        assert figures[DEPARTMENT]["overdue_now"] == 1
        assert page.inner_text("#total-overdue_now") == "1"
        screenshots(page, "supervision-overdue")

        # -- the department resolves it with its own key while the camera still sees it ---
        made = admin.http.post(
            "/v1/keys",
            json={"name": "交警一大队", "scopes": ["department"], "department": DEPARTMENT},
        ).raise_for_status()
        department = Api(url, made.json()["key"])
        assert [
            c["id"] for c in department.http.get("/v1/desk/department/cases").json()["items"]
        ] == [a_id]
        assert department.http.get(f"/v1/desk/department/cases/{c1['id']}").status_code == 404
        resolve = f"/v1/desk/department/cases/{a_id}/resolve"
        department.http.post(resolve, json={"actor": "赵队员", "note": "已劝离"}).raise_for_status()
        resolved = api.case(a_id)
        assert resolved["status"] == "resolved"
        # Resolved past the deadline, on the one clock: late, whatever the wall clock says.
        assert datetime.fromisoformat(resolved["resolved_at"]) > deadline
        assert datetime.fromisoformat(resolved["history"][-1]["at"]) > deadline
        # The camera's next observation (as the live worker sends one for an open incident):
        # the bus is still there after the resolution, now on the server's (moved) clock.
        with IntakeClient(url, ingest) as client:
            receipt = client.patch_case(
                a["report_ids"][0], Observation(last_seen=server.app.state.ctx.clock())
            )
        assert receipt.status == "dispatched"
        back = api.case(a_id)
        assert (back["status"], back["verification"]) == ("dispatched", "not_verified")
        page.goto(f"{url}/console/cases/{a_id}")
        assert page.inner_text("#verification") == "核查未通过：摄像头仍可见"
        # The server's notes in Chinese (by whom: 系统, 摄像头); the department's as written.
        history = page.inner_text("#history")
        assert f"{DEPARTMENT} 超过处置时限" in history and "核查未通过：处置于" in history
        assert "已劝离" in history and "系统" in history and "摄像头" in history
        assert "passed its deadline" not in history and "not verified" not in history
        screenshots(page, "case-not-verified")

        # -- the camera sees the bay empty: footage where the bus drives off, posted ------
        later = server.app.state.ctx.clock() - timedelta(seconds=40)
        gone = camera("cam-1", str(leaving), {"bay-a": BAY_A}, LAT, "510402001001",
                      start_time=_iso(later), calibration=CALIBRATION)  # fmt: skip
        score_post(tmp_path / "score-2", [gone], url, ingest, monkeypatch)
        verified = api.case(a_id)
        assert verified["report_count"] == 2 and verified["cleared_at"] is not None
        assert (verified["status"], verified["verification"]) == ("dispatched", "verified")
        cleared = [e for e in verified["evidence"] if e["kind"] == "cleared"]
        assert cleared and verified["history"][-1]["data"]["evidence"] == [
            e["sha256"] for e in cleared
        ]
        department.http.post(resolve, json={"actor": "赵队员"}).raise_for_status()
        # ... and the dispatcher closes it with one key
        page.goto(f"{url}/console/cases/{a_id}")
        assert page.inner_text("#verification") == "摄像头核查：已消失"
        screenshots(page, "case-verified")
        press_and_wait(page, "c")
        assert "已结案" in flash(page)
        assert api.case(a_id)["status"] == "closed"
        screenshots(page, "case-closed")

        # -- the statistics at the end, and per reviewer ----------------------------------
        figures = check_department_stats(page, url, api)
        assert figures[DEPARTMENT]["closed"] == 1 and figures[DEPARTMENT]["overdue_now"] == 0
        # Resolved after its deadline: not on time, 按期处置率 0 (the page and CSV, above).
        assert figures[DEPARTMENT]["resolved"] == 1
        assert figures[DEPARTMENT]["resolved_on_time"] == 0
        row = f"#supervision-table tr[data-key='{DEPARTMENT}']"
        assert page.inner_text(f"{row} td[data-col='on_time_rate']") == "0%"
        screenshots(page, "supervision-departments")
        people = reviewer_figures([api.case(c["id"]) for c in api.cases()])
        page.goto(f"{url}/console/supervision?by=reviewer")
        listed = page.eval_on_selector_all(
            "#reviewer-table tr[data-reviewer]", "rs => rs.map(r => r.dataset.reviewer)"
        )
        assert sorted(listed) == sorted(people)
        # One name per person, without prefixes, whether they acted in the console or the API.
        assert not [p for p in listed if ":" in p]
        assert people["张调度"]["accepted"] == 1 and people["张调度"]["closed"] == 1
        assert people["赵队员"]["resolved"] == 2 and people["赵队员"]["resolved_not_verified"] == 1
        assert people["李审核"]["rejected"] == 1
        columns = page.eval_on_selector_all(
            "#reviewer-table tr[data-reviewer] td[data-col]",
            "ts => [...new Set(ts.map(t => t.dataset.col))]",
        )
        for person, want in people.items():
            got = shown(page, f"#reviewer-table tr[data-reviewer='{person}']", columns)
            assert got == {c: want.get(c, 0) for c in columns}, person
        screenshots(page, "supervision-reviewers")
        response = page.request.get(f"{url}/console/supervision.csv?by=reviewer")
        assert response.ok and response.headers["content-type"].startswith("text/csv")
        table = {r["reviewer"]: r for r in csv.DictReader(io.StringIO(response.text()))}
        assert table["赵队员"]["resolved_not_verified"] == "1"
        # the map without the closed case, then in English
        page.goto(f"{url}/console/map")
        assert a_id not in page.eval_on_selector_all(
            "svg.map a.case", "as => as.map(a => a.dataset.case)"
        )
        page.goto(f"{url}/console/map?status=all")  # closed and rejected ones drawn hollow
        assert "done" in page.get_attribute(f"svg.map a.case[data-case='{a_id}']", "class")
        assert "done" not in page.get_attribute(f"svg.map a.case[data-case='{c1['id']}']", "class")
        with page.expect_navigation():
            page.click("#lang-switch")
        assert "Map" in page.inner_text("h1")
        screenshots(page, "map-english")
        page.close()
    assert screenshots.count >= 10
    assert all(p.stat().st_size > 10_000 for p in screenshots.directory.glob("*.png"))
    print(f"screenshots: {screenshots.directory}")
