"""The street the console tests review: real footage (vtest.avi) with two buses cut from the
model wheel's bus.jpg parked side by side, in two bays of one camera.

Bus A stands in the left bay the whole time (a fixture, as the reviewer will say). Bus B
parks in the right bay, leaves at 12 s and is back from 22 s: two stays.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.scenes import BUS_CROP, Sprite, crop, render, video_frames

DURATION_S = 34
BAY_A = [[0, 380], [383, 380], [383, 560], [0, 560]]
BAY_B = [[384, 380], [767, 380], [767, 560], [384, 560]]
A_AT = (40, 300)
B_AT = (430, 300)
RULES = {"illegal_parking": {"dwell_s": 4, "clear_s": 6, "occlusion_s": 3}}


def two_bays(out: Path, vtest_avi: Path, bus_jpg: Path) -> Path:
    bus = crop(bus_jpg, BUS_CROP, 290)
    a = Sprite(bus).parked(0, DURATION_S, A_AT)
    b = (
        Sprite(bus)
        .parked(0, 12, B_AT)
        .moving(12, 14, B_AT, (800, B_AT[1]))
        .moving(20, 22, (800, B_AT[1]), B_AT)
        .parked(22, DURATION_S, B_AT)
    )
    return render(out, video_frames(vtest_avi), DURATION_S, 10, [a, b])


def camera(cam_id: str, source: str, zones: dict[str, list], lat: float, grid: str, **extra):
    return {
        "id": cam_id,
        "source": source,
        "location": {"lat": lat, "lon": 101.72, "grid": grid, "address": f"{cam_id} 炳草岗大街"},
        "sample": {"fps": 2},
        "zones": [{"id": z, "polygon": p, "checks": ["illegal_parking"]} for z, p in zones.items()],
        **extra,
    }


def bus_a_leaves(out: Path, vtest_avi: Path, bus_jpg: Path) -> Path:
    """The same street later: bus A stands in the left bay, drives off at 10 s; 24 s."""
    bus = crop(bus_jpg, BUS_CROP, 290)
    a = Sprite(bus).parked(0, 10, A_AT).moving(10, 12, A_AT, (-400, A_AT[1]))
    return render(out, video_frames(vtest_avi), 24, 10, [a])
