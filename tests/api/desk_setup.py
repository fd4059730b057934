"""A small city for the dispatch desk tests: four grid cells around `helpers.HERE` in two
parent areas, and a routing table over them."""

from __future__ import annotations

import copy
from typing import Any

from tests.api.helpers import Api

# Cells 0.005° square: HERE (30.2741, 120.1551) lies in SE, FAR (30.2841, ...) outside all.
_LON = (120.150, 120.155, 120.160)
_LAT = (30.270, 30.275, 30.280)


def _square(lon0: float, lat0: float, lon1: float, lat1: float) -> list[list[list[float]]]:
    return [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]


def _cell(code: str, parent: str, ring: list[list[list[float]]]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"code": code, "parent": parent, "name": f"网格 {code}"},
        "geometry": {"type": "Polygon", "coordinates": ring},
    }


GRID: dict[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        _cell("SW", "west", _square(_LON[0], _LAT[0], _LON[1], _LAT[1])),
        _cell("NW", "west", _square(_LON[0], _LAT[1], _LON[1], _LAT[2])),
        _cell("SE", "east", _square(_LON[1], _LAT[0], _LON[2], _LAT[1])),
        _cell("NE", "east", _square(_LON[1], _LAT[1], _LON[2], _LAT[2])),
        # The camera's configured cell, for cases no calibrated camera placed.
        _cell("330102001", "west", _square(120.140, 30.270, 120.150, 30.280)),
    ],
}

ROUTING: dict[str, Any] = {
    "routes": [
        {"area": "west", "type": None, "department": "城管西中队"},
        {"area": "east", "type": "street_stall", "department": "城管东中队"},
        {"area": "NE", "type": "street_stall", "department": "市场监管所"},
        {"area": "east", "type": "illegal_parking", "department": "交警东大队"},
        {"area": "east", "type": "garbage", "department": "环卫东所"},
    ],
    "deadlines": [
        {"type": "street_stall", "urgency": "normal", "hours": 2, "working": True},
        {"type": "street_stall", "urgency": "urgent", "hours": 1},
        {"type": "illegal_parking", "hours": 1},
        {"type": "garbage", "hours": 4, "working": True},
    ],
    "calendar": {
        "timezone": "Asia/Shanghai",
        "weekdays": [1, 2, 3, 4, 5],
        "hours": [{"start": "08:30", "end": "12:00"}, {"start": "13:30", "end": "17:30"}],
    },
}


def grid() -> dict[str, Any]:
    return copy.deepcopy(GRID)


def routing() -> dict[str, Any]:
    return copy.deepcopy(ROUTING)


def load_desk(api: Api) -> None:
    api.admin.put("/v1/desk/grid", json=GRID).raise_for_status()
    api.admin.put("/v1/desk/routing", json=ROUTING).raise_for_status()
