"""The grid and the routing table: import (API and CLI), validation, a case's cell, and the
deadline arithmetic of the working calendar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.server import grid as grid_module
from api.server.problems import Problem
from api.server.routing import Calendar, Urgency, parse
from tests.api.desk_setup import GRID, ROUTING, grid, load_desk, routing
from tests.api.helpers import FAR, HERE, Api, is_problem, post, report

ROOT = Path(__file__).resolve().parents[2]


def test_a_case_gets_the_cell_its_object_stands_in(api: Api, photos: list[bytes]) -> None:
    load_desk(api)
    placed, files = report(photos, position={"lat": HERE[0], "lon": HERE[1]})
    case_id = post(api.ingest, placed, files).raise_for_status().json()["case_id"]
    case = api.dispatch.get(f"/v1/cases/{case_id}").raise_for_status().json()
    assert case["location"]["grid"] == "SE"  # not the camera's configured 330102001
    # Uncalibrated: the camera's configured cell; placed outside the grid: the same.
    unplaced, files = report(photos, camera="cam-2", photo_offset=2)
    outside, files2 = report(
        photos, camera="cam-3", photo_offset=4, position={"lat": FAR[0], "lon": FAR[1]}
    )
    for r, f in ((unplaced, files), (outside, files2)):
        cid = post(api.ingest, r, f).raise_for_status().json()["case_id"]
        assert api.dispatch.get(f"/v1/cases/{cid}").json()["location"]["grid"] == "330102001"
    listed = api.dispatch.get("/v1/cases", params={"grid": "SE"}).json()["items"]
    assert [c["id"] for c in listed] == [case_id]


def test_grid_and_routing_read_back(api: Api) -> None:
    load_desk(api)
    back = api.dispatch.get("/v1/desk/grid").raise_for_status().json()
    assert {f["properties"]["code"] for f in back["features"]} == {
        f["properties"]["code"] for f in GRID["features"]
    }
    se = next(f for f in back["features"] if f["properties"]["code"] == "SE")
    assert se["properties"]["parent"] == "east"
    assert se["geometry"] == GRID["features"][2]["geometry"]
    table = api.dispatch.get("/v1/desk/routing").raise_for_status().json()
    assert [r["department"] for r in table["routes"]] == [
        r["department"] for r in ROUTING["routes"]
    ]
    assert api.ingest.put("/v1/desk/grid", json=GRID).status_code == 403


def _with(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"type": "Feature"}, "FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        (_with(grid(), ["features", 0, "properties", "code"], None), "properties.code"),
        (_with(grid(), ["features", 1, "properties", "code"], "SW"), "used twice"),
        (_with(grid(), ["features", 0, "geometry", "type"], "Point"), "Polygon"),
        (
            _with(grid(), ["features", 0, "geometry", "coordinates", 0, -1], [120.0, 30.0]),
            "not closed",
        ),
        (
            _with(grid(), ["features", 0, "geometry", "coordinates", 0, 1], [200.0, 30.27]),
            "outside WGS 84",
        ),
        (  # NW stretched south over SW
            _with(grid(), ["features", 1, "geometry", "coordinates", 0, 1], [120.155, 30.272]),
            "overlap",
        ),
    ],
)
def test_a_bad_grid_is_refused_whole(sqlite_api: Api, document: dict[str, Any], words: str) -> None:
    api = sqlite_api
    load_desk(api)
    body = is_problem(api.admin.put("/v1/desk/grid", json=document), 422)
    assert words in body["detail"], body
    assert body["type"].endswith(":invalid-grid")
    codes = {f["properties"]["code"] for f in api.dispatch.get("/v1/desk/grid").json()["features"]}
    assert codes == {f["properties"]["code"] for f in GRID["features"]}  # the old grid stays


def test_a_grid_the_routing_leaves_unrouted_is_refused(api: Api) -> None:
    load_desk(api)
    bigger = grid()
    bigger["features"].append(
        {
            "type": "Feature",
            "properties": {"code": "X1", "parent": "north"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[121, 31], [121.01, 31], [121.01, 31.01], [121, 31]]],
            },
        }
    )
    body = is_problem(api.admin.put("/v1/desk/grid", json=bigger), 422)
    assert "X1/street_stall" in body["detail"] and body["type"].endswith(":invalid-routing")
    assert len(api.dispatch.get("/v1/desk/grid").json()["features"]) == len(GRID["features"])


def test_a_bad_routing_table_is_refused(api: Api) -> None:
    before = api.admin.put("/v1/desk/routing", json=ROUTING)
    assert is_problem(before, 409)["type"].endswith(":no-grid")
    api.admin.put("/v1/desk/grid", json=GRID).raise_for_status()
    nowhere = routing()
    nowhere["routes"] = [r for r in nowhere["routes"] if r["area"] != "east" or r["type"]
                         != "garbage"]  # fmt: skip
    body = is_problem(api.admin.put("/v1/desk/routing", json=nowhere), 422)
    assert "SE/garbage" in body["detail"] and "NE/garbage" in body["detail"]
    unknown = routing()
    unknown["routes"].append({"area": "Z9", "type": None, "department": "某局"})
    assert "Z9" in is_problem(api.admin.put("/v1/desk/routing", json=unknown), 422)["detail"]
    zone = routing()
    zone["calendar"]["timezone"] = "Mars/Olympus"
    assert "Mars/Olympus" in is_problem(api.admin.put("/v1/desk/routing", json=zone), 422)["detail"]
    no_deadline = routing()
    no_deadline["deadlines"] = [d for d in no_deadline["deadlines"] if d["type"] != "garbage"]
    assert (
        "garbage" in is_problem(api.admin.put("/v1/desk/routing", json=no_deadline), 422)["detail"]
    )
    assert api.dispatch.get("/v1/desk/routing").status_code == 404  # nothing was stored


def test_departments_by_cell_then_area_then_type() -> None:
    table = parse(ROUTING)
    assert table.department("SE", "east", "street_stall") == "城管东中队"
    assert table.department("NE", "east", "street_stall") == "市场监管所"  # the cell's own rule
    assert table.department("NE", "east", "garbage") == "环卫东所"
    assert table.department("SW", "west", "garbage") == "城管西中队"  # any type
    assert table.department("Q", None, "garbage") is None


SHANGHAI_FRIDAY_1630 = datetime(2025, 6, 6, 8, 30, tzinfo=UTC)  # 16:30 in Asia/Shanghai


def test_working_hours_skip_nights_weekends_and_holidays() -> None:
    cal = Calendar()
    # One hour left on Friday (to 17:30), one more from Monday 08:30: 09:30 local.
    assert cal.add_working_hours(SHANGHAI_FRIDAY_1630, 2) == datetime(2025, 6, 9, 1, 30, tzinfo=UTC)
    # Monday a holiday: Tuesday.
    holiday = Calendar(holidays=[date(2025, 6, 9)])
    assert holiday.add_working_hours(SHANGHAI_FRIDAY_1630, 2) == datetime(
        2025, 6, 10, 1, 30, tzinfo=UTC
    )
    # Saturday an extra working day (调休): Saturday.
    swap = Calendar(workdays=[date(2025, 6, 7)])
    assert swap.add_working_hours(SHANGHAI_FRIDAY_1630, 2) == datetime(
        2025, 6, 7, 1, 30, tzinfo=UTC
    )
    # Across lunch: 11:30 + 1 h -> 14:00.
    assert cal.add_working_hours(datetime(2025, 6, 9, 3, 30, tzinfo=UTC), 1) == datetime(
        2025, 6, 9, 6, 0, tzinfo=UTC
    )
    table = parse(ROUTING)
    plain = table.deadline("street_stall", Urgency.urgent, SHANGHAI_FRIDAY_1630)
    assert plain == datetime(2025, 6, 6, 9, 30, tzinfo=UTC)
    with pytest.raises(Problem):
        Calendar(weekdays=[], workdays=[]).add_working_hours(SHANGHAI_FRIDAY_1630, 1)


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _collection(*rings: list[list[float]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"code": f"c{i}"},
             "geometry": {"type": "Polygon", "coordinates": [r]}}
            for i, r in enumerate(rings)
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("rings", "overlap"),
    [
        ((_square(0, 0, 1, 1), _square(1, 0, 2, 1)), False),  # a shared edge
        ((_square(0, 0, 1, 1), _square(1, 1, 2, 2)), False),  # a shared corner
        ((_square(0, 0, 1, 1), _square(0, 0, 1, 1)), True),  # the same cell twice
        ((_square(0, 0, 2, 2), _square(0.5, 0.5, 1, 1)), True),  # one inside the other
        ((_square(0, 0, 1, 1), _square(0.5, -1, 0.6, 2)), True),  # crossing, no vertex inside
        ((_square(0, 0, 2, 1), _square(0, 0, 1, 1)), True),  # sharing three edges' worth
    ],
)
def test_overlap_detection(rings: tuple[list[list[float]], ...], overlap: bool) -> None:
    if overlap:
        with pytest.raises(Problem, match="overlap"):
            grid_module.parse(_collection(*rings))
    else:
        assert len(grid_module.parse(_collection(*rings))) == len(rings)


def test_point_on_shared_edge_goes_to_one_cell() -> None:
    cells = grid_module.parse(_collection(_square(0, 0, 1, 1), _square(1, 0, 2, 1)))
    assert [grid_module.contains(c, 1.0, 0.5) for c in cells] == [True, True]
    assert [grid_module.contains(c, 0.5, 0.5) for c in cells] == [True, False]
    assert not any(grid_module.contains(c, 3.0, 0.5) for c in cells)
    assert np.isfinite(np.array(cells[0].bounds)).all()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], env=env, text=True, capture_output=True,
        timeout=120,
    )  # fmt: skip


def test_cli_imports_and_refuses_with_reasons(tmp_path: Path) -> None:
    storage = ["--data-dir", str(tmp_path / "data"), "--db", f"sqlite:///{tmp_path / 'sw.db'}"]
    grid_file = tmp_path / "grid.geojson"
    grid_file.write_text(json.dumps(GRID, ensure_ascii=False), encoding="utf-8")
    routing_file = tmp_path / "routing.yaml"
    import yaml

    routing_file.write_text(yaml.safe_dump(ROUTING, allow_unicode=True), encoding="utf-8")
    early = _cli("desk", "routing", *storage, str(routing_file))
    assert early.returncode == 2 and "Import the grid before" in early.stderr
    done = _cli("desk", "grid", *storage, str(grid_file))
    assert done.returncode == 0, done.stderr
    assert "Imported 5 grid cells" in done.stdout
    done = _cli("desk", "routing", *storage, str(routing_file))
    assert done.returncode == 0 and "5 routes and 4 deadlines" in done.stdout, done.stderr
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json", encoding="utf-8")
    refused = _cli("desk", "grid", *storage, str(bad))
    assert refused.returncode == 2 and "cannot read" in refused.stderr
    overlapping = _with(grid(), ["features", 1, "geometry", "coordinates", 0, 1], [120.155, 30.272])
    bad.write_text(json.dumps(overlapping), encoding="utf-8")
    refused = _cli("desk", "grid", *storage, str(bad))
    assert refused.returncode == 2 and "'SW' and 'NW' overlap" in refused.stderr, refused.stderr
