"""The dispatch desk's console pages over real HTTP (the map, 监督评价, the department
picker); the whole flow in a real browser is tests/console/test_desk_browser.py."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from api.contract.suppression_rules import DEFAULT_TZ
from api.server.console import mapsvg
from api.server.settings import Settings
from tests.api.conftest import make_api
from tests.api.desk_setup import load_desk
from tests.api.helpers import FAR, HERE, T0, Api
from tests.api.test_console import csrf_of, sign_in
from tests.api.test_desk_dispatch import _move, placed_case

TILES = "https://tiles.city.example/{z}/{x}/{y}.png"


@pytest.fixture
def desk_console(sqlite_settings: Settings) -> Iterator[Api]:
    yield from make_api(sqlite_settings.model_copy(update={"map_tile_url": TILES}))


def _browser(api: Api) -> tuple[httpx.Client, str]:
    browser, response = sign_in(api, api.server.create_key("dispatch", name="王调度"))
    assert response.status_code == 303
    return browser, csrf_of(browser.get("/console").text)


def test_the_dispatch_form_proposes_the_routed_department_and_takes_another(
    desk_console: Api, photos: list[bytes]
) -> None:
    api = desk_console
    load_desk(api)
    case_id = placed_case(api, photos)  # HERE: cell SE, area east, a street stall
    browser, token = _browser(api)
    assert browser.post(f"/console/cases/{case_id}/accept", data={"csrf": token}).is_redirect
    page = browser.get(f"/console/cases/{case_id}").text
    picker = re.search(r'<select name="department" id="department-picker".*?</select>', page, re.S)
    assert picker is not None
    options = re.findall(r'<option value="([^"]+)" ?(selected)?>', picker.group(0))
    assert [o for o, _ in options] == sorted(["城管西中队", "城管东中队", "市场监管所",
                                              "交警东大队", "环卫东所"])  # fmt: skip
    assert [o for o, chosen in options if chosen] == ["城管东中队"]  # routed: east, stall
    assert "城管东中队 (按路由)" in picker.group(0)
    r = browser.post(
        f"/console/cases/{case_id}/dispatch",
        data={"csrf": token, "department": "市场监管所", "urgency": "urgent", "note": "改派"},
    )
    assert r.is_redirect
    case = api.dispatch.get(f"/v1/cases/{case_id}").json()
    assert (case["status"], case["department"], case["urgency"]) == (
        "dispatched",
        "市场监管所",
        "urgent",
    )
    dispatched = case["history"][-1]
    assert dispatched["data"]["department"] == "市场监管所" and dispatched["note"] == "改派"


def test_the_map_draws_cells_cameras_and_open_cases_with_the_city_tiles(
    desk_console: Api, photos: list[bytes]
) -> None:
    api = desk_console
    load_desk(api)
    here = placed_case(api, photos, camera="cam-1", at=HERE)
    far = placed_case(api, photos, camera="cam-2", at=FAR, start=T0 + timedelta(hours=1))
    _move(api.dispatch, here, "accepted")
    _move(api.dispatch, here, "dispatched")
    browser, _ = _browser(api)
    r = browser.get("/console/map")
    assert r.status_code == 200
    assert "img-src 'self' https://tiles.city.example;" in r.headers["content-security-policy"]
    html = r.text
    assert sorted(re.findall(r'data-cell="([^"]+)"', html)) == ["330102001", "NE", "NW", "SE", "SW"]
    assert sorted(re.findall(r'<a href="/console/cases/([^"?]+)\?', html)) == sorted([here, far])
    # Both cameras are calibrated (their reports place the object): each has a view cone.
    assert sorted(re.findall(r'data-camera="([^"]+)" data-heading', html)) == ["cam-1", "cam-2"]
    tiles = re.findall(r'<image href="https://tiles\.city\.example/(\d+)/(\d+)/(\d+)\.png"', html)
    assert 0 < len(tiles) <= mapsvg.MAX_TILES and len({z for z, _, _ in tiles}) == 1
    # Overdue on the server's clock: ringed on the map, counted in its heading.
    case = api.dispatch.get(f"/v1/cases/{here}").json()
    deadline = case["deadline"]
    assert deadline is not None and not case["overdue"]
    api.server.app.state.ctx.clock.move_to(datetime.fromisoformat(deadline) + timedelta(hours=1))
    html = browser.get("/console/map").text
    assert re.findall(r'class="case overdue" data-case="([^"]+)"', html) == [here]
    assert 'id="map-overdue"' in html
    # The queue's filters: one type, one grid cell, or closed cases only.
    assert re.findall(r'data-case="([^"]+)"', browser.get("/console/map?grid=SE").text) == [here]
    assert "data-case=" not in browser.get("/console/map?status=closed").text


def test_tiles_cover_the_view_at_the_scale_of_the_svg() -> None:
    view = mapsvg.view_of([(30.270, 120.140), (30.280, 120.160)])
    assert view is not None
    tiles = mapsvg.tiles(view, "/t/{z}/{x}/{y}.png")
    xs = [t.x for t in tiles]
    ys = [t.y for t in tiles]
    size = tiles[0].size
    # The tiles reach past every edge of the view, and no tile lies wholly outside it.
    assert min(xs) <= 0 and max(xs) + size >= view.width
    assert min(ys) <= 0 and max(ys) + size >= view.height
    assert all(
        -size < x < view.width and -size < y < view.height for x, y in zip(xs, ys, strict=True)
    )
    # A tile's pixels are about the SVG's pixels (the zoom nearest to the view's scale).
    assert 128 <= size <= 512
    # A known tile: zoom z, the tile holding 120.15E 30.275N (slippy-map numbering).
    z = int(tiles[0].url.split("/")[2])
    x, y = mapsvg.world(30.275, 120.15)
    want = f"/t/{z}/{int(x * 2**z)}/{int(y * 2**z)}.png"
    assert want in {t.url for t in tiles}


def test_supervision_pages_and_csv_per_group_and_reviewer(
    desk_console: Api, photos: list[bytes]
) -> None:
    api = desk_console
    load_desk(api)
    a = placed_case(api, photos, camera="cam-1", at=HERE)
    b = placed_case(api, photos, camera="cam-2", at=FAR, start=T0 + timedelta(hours=1))
    _move(api.dispatch, a, "accepted")
    _move(api.dispatch, a, "dispatched")
    r = api.dispatch.post(
        f"/v1/cases/{b}/transitions", json={"to": "rejected", "actor": "李审核", "reason": "other"}
    )
    assert r.status_code == 200, r.text
    browser, _ = _browser(api)
    for by in ("department", "grid", "type", "camera", "reviewer"):
        page = browser.get(f"/console/supervision?by={by}")
        assert page.status_code == 200, by
        assert "<svg" in page.text and 'class="chart"' in page.text, by
    rows = {
        r["department"]: r
        for r in csv.DictReader(io.StringIO(browser.get("/console/supervision.csv").text))
    }
    assert rows["城管东中队"]["dispatched"] == "1" and rows["(none)"]["reported"] == "1"
    reviewers = {
        r["reviewer"]: r
        for r in csv.DictReader(
            io.StringIO(browser.get("/console/supervision.csv?by=reviewer").text)
        )
    }
    assert reviewers["王科长"]["accepted"] == "1" and reviewers["王科长"]["dispatched"] == "1"
    assert reviewers["李审核"]["rejected"] == "1"
    assert reviewers["李审核"]["rejected_re_reported"] == "0"
    # The camera reports the rejected site again: that rejection is now "re-reported".
    placed_case(api, photos, camera="cam-2", at=FAR, start=T0 + timedelta(hours=3))
    again = {
        r["reviewer"]: r
        for r in csv.DictReader(
            io.StringIO(browser.get("/console/supervision.csv?by=reviewer").text)
        )
    }
    assert again["李审核"]["rejected_re_reported"] == "1"


def _history(page: str) -> list[list[str]]:
    """The case page's history: each change's cells as text."""
    table = re.search(r'<table class="plain-table" id="history">.*?</table>', page, re.S)
    assert table is not None
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(<td>.*?)</tr>", table.group(0), re.S)
    ]


def test_one_name_per_person_and_the_servers_notes_in_the_readers_language(
    desk_console: Api, photos: list[bytes]
) -> None:
    """A dispatcher who acts in the console and through the API with one key is one person
    in 监督评价 and in the history; the overdue watch's note reads in Chinese (or English),
    a person's own note as written, and the API keeps its English note."""
    from api.server.desk import check_deadlines

    api = desk_console
    load_desk(api)
    case_id = placed_case(api, photos)
    key = api.server.create_key("dispatch", name="王调度")
    browser, response = sign_in(api, key)
    assert response.status_code == 303
    token = csrf_of(browser.get("/console").text)
    assert browser.post(f"/console/cases/{case_id}/accept", data={"csrf": token}).is_redirect
    same = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"})
    r = same.post(
        f"/v1/cases/{case_id}/transitions",
        json={"to": "dispatched", "note": "请尽快", "actor": "王调度"},
    )
    deadline = datetime.fromisoformat(r.raise_for_status().json()["deadline"])
    ctx = api.server.app.state.ctx
    ctx.clock.move_to(deadline + timedelta(minutes=1))
    assert check_deadlines(ctx.db, ctx.metrics) == [case_id]
    _move(same, case_id, "resolved", actor="王调度")

    reviewers = {
        r["reviewer"]: r
        for r in csv.DictReader(
            io.StringIO(browser.get("/console/supervision.csv?by=reviewer").text)
        )
    }
    assert list(reviewers) == ["王调度"]
    assert [reviewers["王调度"][d] for d in ("accepted", "dispatched", "resolved")] == ["1"] * 3

    history = same.get(f"/v1/cases/{case_id}").json()["history"]
    overdue = next(h for h in history if h["kind"] == "overdue")
    assert overdue["note"] == f"城管东中队 passed its deadline {deadline.isoformat()}"
    assert overdue["data"]["note_code"] == "overdue"
    page = browser.get(f"/console/cases/{case_id}").text
    shown = {cells[2]: cells for cells in _history(page)}  # by the change's kind
    at = deadline.astimezone(ZoneInfo(DEFAULT_TZ)).strftime("%Y-%m-%d %H:%M:%S")
    assert shown["超期"][4:] == ["系统", f"城管东中队 超过处置时限（{at}）"]
    assert shown["状态变更"][4] == "王调度"
    assert "passed its deadline" not in page and "key:" not in page and "console:" not in page
    assert page.count(">王调度</td>") == 3 and "请尽快" in page
    browser.cookies.set("sw_lang", "en")
    english = {cells[2]: cells for cells in _history(browser.get(f"/console/cases/{case_id}").text)}
    assert english["Overdue"][4:] == ["System", f"城管东中队 passed its deadline ({at})"]
    same.close()
    browser.close()
