"""The worker's half of the feedback loop, without cameras: schedules, matching, holding
back and releasing incidents, the saved copy of the suppressions, health reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from api.contract.suppression_rules import Schedule, SuppressionRule, iou
from detector.incidents import Incident, IncidentEvent
from streams.camera.suppressions import Feedback, SuppressionCache
from streams.config import CameraConfig
from streams.live.health_report import HealthReporter
from streams.sources.health import HealthEvent

MONDAY_0700 = datetime(2026, 6, 1, 7, 0, tzinfo=UTC) - timedelta(hours=8)  # Shanghai time


def test_schedules_in_local_time_and_across_midnight():
    market = Schedule.parse("mon-fri 06:00-09:00")
    assert market.text() == "mon-fri 06:00-09:00"
    assert market.active(MONDAY_0700)
    assert not market.active(MONDAY_0700 + timedelta(hours=3))
    assert not market.active(MONDAY_0700 + timedelta(days=5))  # Saturday
    night = Schedule.parse("sat,sun 22:00-06:00")
    assert night.active(MONDAY_0700 - timedelta(hours=3))  # Monday 04:00, from Sunday night
    assert not night.active(MONDAY_0700 + timedelta(days=1, hours=-3))  # Tuesday 04:00
    with pytest.raises(ValueError):
        Schedule.parse("someday 06:00-09:00")
    with pytest.raises(ValueError):
        Schedule(tz="Mars/Olympus", windows=[{"start": "06:00", "end": "07:00"}])


def rule(**kw) -> SuppressionRule:
    base = {"id": "s1", "camera_id": "cam", "zone_id": "bay", "type": "illegal_parking",
            "bbox": [0, 0, 100, 100], "reason": "fixture"}  # fmt: skip
    return SuppressionRule(**{**base, **kw})


def test_a_suppression_matches_its_site_only_while_in_force():
    r = rule(expires_at=MONDAY_0700 + timedelta(days=1))
    assert r.matches("cam", "bay", "illegal_parking", [5, 5, 105, 100], MONDAY_0700)
    assert iou([0, 0, 100, 100], [60, 0, 160, 100]) < 0.3
    assert not r.matches("cam", "bay", "illegal_parking", [60, 0, 160, 100], MONDAY_0700)
    assert not r.matches("cam", "other", "illegal_parking", [0, 0, 100, 100], MONDAY_0700)
    assert not r.matches("cam", "bay", "garbage", [0, 0, 100, 100], MONDAY_0700)
    assert not r.matches("cam2", "bay", "illegal_parking", [0, 0, 100, 100], MONDAY_0700)
    assert not r.matches("cam", "bay", "illegal_parking", [0, 0, 100, 100],
                         MONDAY_0700 + timedelta(days=2))  # fmt: skip
    assert not rule(active=False).matches("cam", "bay", "illegal_parking", [0, 0, 100, 100],
                                          MONDAY_0700)  # fmt: skip


def incident(iid: str, zone: str = "bay", box=(0, 0, 100, 100)) -> Incident:
    return Incident(iid, "illegal_parking", "cam", zone, np.array(box, float), "bus", 0.8,
                    0.0, 4.0, 4.0)  # fmt: skip


def camera(schedule: str | None = None) -> CameraConfig:
    zones = [{"id": "bay", "polygon": [[0, 0], [1, 0], [1, 1]], "checks": ["illegal_parking"]},
             {"id": "road", "polygon": [[0, 0], [1, 0], [1, 1]], "checks": ["illegal_parking"],
              "schedule": Schedule.parse(schedule).model_dump() if schedule else None}]  # fmt: skip
    return CameraConfig(id="cam", source="rtsp://x/y", zones=zones)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_held_incidents_are_counted_released_when_the_reason_lapses_or_forgotten(tmp_path):
    market = rule(schedule=Schedule.parse("mon-fri 06:00-09:00").model_dump())
    cache = SuppressionCache(tmp_path / "s.json", lambda: [market])
    assert cache.refresh()
    clock = Clock(MONDAY_0700)
    registry = CollectorRegistry()
    feedback = Feedback(cache, registry, tmp_path / "held.json", clock)
    cam = camera()
    stall, other = incident("i1"), incident("i2", box=(300, 0, 400, 100))
    out = feedback.filter(
        cam,
        [IncidentEvent("confirmed", stall), IncidentEvent("confirmed", other)],
        lambda: [stall, other],
    )
    assert [e.incident.id for e in out] == ["i2"]  # the other site on the camera is reported
    assert feedback.holds("i1") and not feedback.holds("i2")
    assert (
        registry.get_sample_value(
            "streetwatch_suppressed_total", {"camera": "cam", "why": "suppressed"}
        )
        == 1
    )
    assert feedback.filter(cam, [], lambda: [stall]) == []  # still market hours
    clock.now += timedelta(hours=3)  # 10:00: the market is over, the bus still there
    (released,) = feedback.filter(cam, [], lambda: [stall])
    assert released.kind == "confirmed" and released.incident is stall
    assert not feedback.holds("i1")
    # One held, then cleared while held: never reported, forgotten (also after a restart).
    clock.now = MONDAY_0700
    third = incident("i3")
    assert feedback.filter(cam, [IncidentEvent("confirmed", third)], lambda: [third]) == []
    again = Feedback(cache, CollectorRegistry(), tmp_path / "held.json", clock)
    assert again.holds("i3")
    assert again.filter(cam, [IncidentEvent("cleared", third)], lambda: []) == []
    assert not again.holds("i3")


def test_zone_hours_hold_incidents_outside_them(tmp_path):
    feedback = Feedback(None, CollectorRegistry(), tmp_path / "held.json", Clock(MONDAY_0700))
    cam = camera(schedule="daily 10:00-18:00")
    parked = incident("p1", zone="road")
    assert feedback.filter(cam, [IncidentEvent("confirmed", parked)], lambda: [parked]) == []
    assert feedback.holds("p1")
    feedback.clock.now += timedelta(hours=4)  # 11:00: the rule applies, the car is still there
    (event,) = feedback.filter(cam, [], lambda: [parked])
    assert event.incident is parked
    in_bay = incident("b1")  # the bay has no hours: always checked
    assert feedback.filter(cam, [IncidentEvent("confirmed", in_bay)], lambda: [])


def test_the_saved_copy_outlives_an_api_outage(tmp_path):
    up = True

    def fetch() -> list[SuppressionRule]:
        if not up:
            raise ConnectionError("API down")
        return [rule()]

    cache = SuppressionCache(tmp_path / "s.json", fetch)
    assert cache.refresh() and len(cache.rules) == 1
    up = False
    assert not cache.refresh() and len(cache.rules) == 1  # kept
    restarted = SuppressionCache(tmp_path / "s.json", fetch)  # a restart during the outage
    assert restarted.rules == [rule()]


def test_health_reports_state_and_thumbnail():
    posted = []
    reporter = HealthReporter(lambda cam, health, image: posted.append((cam, health, image)))
    reporter.saw("cam-1", np.zeros((576, 768, 3), np.uint8), 1_780_000_000.0)
    reporter.event(HealthEvent("cam-2", "reconnecting", "attempt 3"))
    reporter.event(HealthEvent("cam-2", "dead", "gave up"))
    assert reporter.report_once() == 2
    by_camera = {cam: (health, image) for cam, health, image in posted}
    assert by_camera["cam-1"][0]["state"] == "up" and by_camera["cam-1"][1][:2] == b"\xff\xd8"
    assert by_camera["cam-2"][0] == {
        "state": "dead", "detail": "gave up", "since": by_camera["cam-2"][0]["since"],
        "last_frame_at": None,
    }  # fmt: skip
    assert by_camera["cam-2"][1] is None
