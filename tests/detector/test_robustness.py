"""The static-object stand-in under the nuisances of a street camera (issue #23): each of
tests/support/nuisance.py's two-minute scenes of real footage, scored by `streetwatch score`
with the default model, must give exactly the cases of what was planted in it, of the right
type, dated from when it appeared, and no others; a camera in the wind is not a moved camera,
a re-aimed one is."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.support import nuisance
from tests.support.nuisance import ALL, RULES, STREET, Planted
from tests.test_scoring import START, at, main_score, ts

SCENES = nuisance.short_scenes()
INTERVAL_S = 1 / nuisance.FPS  # the sampling interval: 2 fps, fixed
MOVED_WITHIN_S = 10.0
SCENE_CHANGE = re.compile(r"scene change \((\w+)\) at ([\d.]+) s")


@pytest.fixture(scope="module")
def build(default_model, vtest_avi):
    """Builds a scene's video (once: they are cached on disk)."""
    return nuisance.build


def score(tmp_path: Path, path: Path, capsys, caplog) -> tuple[list[dict], list[tuple[str, float]]]:
    """The cases of `streetwatch score` on the scene, and its scene changes (kind, time)."""
    camera = {
        "id": path.stem,
        "source": str(path),
        "start_time": START.isoformat(),
        "sample": {"fps": nuisance.FPS, "adaptive": False},
        "zones": [{"id": "street", "polygon": STREET, "checks": ALL}],
    }
    with caplog.at_level(logging.INFO, logger="detector.pipeline"):
        code, cases, printed = main_score(tmp_path, [camera], RULES, capsys)
    assert code == 0, printed
    changes = [(kind, float(s)) for kind, s in SCENE_CHANGE.findall(caplog.text)]
    counted = re.search(r"(\d+) scene changes", printed)
    assert (int(counted.group(1)) if counted else 0) == len(changes), (printed, changes)
    return cases, changes


def assert_found(case: dict, planted: Planted) -> None:
    assert case["class_name"] == planted.class_name
    assert planted.found_by(case["type"], case["bbox"]), (case["bbox"], planted.box)
    seen = (ts(case["first_seen"]) - at(planted.at_s)).total_seconds()
    assert abs(seen) <= INTERVAL_S, f"first seen {seen:+.1f} s from its appearance"
    confirmed = (ts(case["confirmed_at"]) - at(planted.at_s)).total_seconds()
    dwell = RULES[planted.type]["dwell_s"]
    assert abs(confirmed - dwell) <= 2 * INTERVAL_S, f"confirmed {confirmed:.1f} s after"
    assert case["cleared_at"] is None, "it is still there when the scene ends"


@pytest.mark.parametrize("name", [s.name for s in SCENES.values() if s.moved_at is None], ids=str)
def test_scene_gives_exactly_the_cases_of_what_was_planted(name, build, tmp_path, capsys, caplog):
    """Drift both ways, shake (with a confirmed heap through it, and a parked bus), IR night,
    low bitrate, a tree, a crowd in the rain, people standing and sitting, a vendor who
    stands, sits, walks round the goods and is hidden a moment, a heap on the frame's bottom
    edge: what was planted, once, of its type, on time; nothing else; no moved camera."""
    scene = SCENES[name]
    cases, changes = score(tmp_path, build(scene), capsys, caplog)
    got = Counter(c["type"] for c in cases)
    want = Counter(p.type for p in scene.planted)
    summary = [(c["type"], c["class_name"], c["bbox"], c["first_seen"]) for c in cases]
    assert got == want, summary
    for planted in scene.planted:
        (case,) = [c for c in cases if c["type"] == planted.type]
        assert_found(case, planted)
    if scene.family == "drift":
        # A lighting step may re-seed; slow light is not a moved camera.
        assert [k for k, _ in changes if k == "moved"] == [], changes
    else:
        assert changes == [], changes


def test_a_reaimed_camera_is_one_scene_change_and_no_object(build, tmp_path, capsys, caplog):
    scene = SCENES["reaimed"]
    cases, changes = score(tmp_path, build(scene), capsys, caplog)
    assert cases == [], cases
    assert [k for k, _ in changes] == ["moved"], changes
    ((_, when),) = changes
    # Told from a sway by lasting: a few seconds' wait is allowed, never a report before.
    assert 0 <= when - scene.moved_at <= MOVED_WITHIN_S


def test_litter_the_model_half_takes_for_a_person_is_still_garbage(
    default_model, vtest_avi, tmp_path, capsys, caplog
):
    """The long sunrise's dim warm light near its end (x0.9 of full daylight, still warm):
    the default model scores the fruit litter on the grass as a "person" (0.26-0.36) on
    every sample it lies there. A detection the model was never sure of explains nothing:
    the litter is garbage, on time, not a person's pixels redated every sample."""
    a = nuisance.smooth(0.8)
    gain, tint = 0.3 + 0.8 * a, (1 - a) * nuisance.WARM + a * nuisance.NEUTRAL
    litter, seconds = nuisance.litter(), 60.0
    scene = nuisance.Scene(
        "warm-litter",
        "drift",
        "x0.9, warm",
        seconds,
        sprites=lambda: [nuisance.dumped(litter, nuisance.LITTER_AT, 20, seconds + 1)],
        effects=(nuisance.Daylight(0, seconds, (gain, gain), (tint, tint)),),
        planted=(Planted("garbage", nuisance.placed(litter, nuisance.LITTER_AT), 20.0),),
    )
    clip = nuisance.render(tmp_path / "warm-litter.mp4", scene.stream(), seconds, nuisance.FPS)
    cases, changes = score(tmp_path, clip, capsys, caplog)
    ((planted,),) = [scene.planted]
    assert [c["type"] for c in cases] == ["garbage"], cases
    assert_found(cases[0], planted)
    assert changes == [], changes
