"""Configuration validation: the documented example loads, and each fault names its path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.config import ConfigError, DetectorConfig, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "config.yaml"


def minimal(**camera) -> dict:
    cam = {
        "id": "cam-1",
        "source": "clip.mp4",
        "zones": [{"id": "z", "polygon": [[0, 0], [10, 0], [10, 10]], "checks": ["garbage"]}],
    } | camera
    return {"cameras": [cam]}


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    return err.value.problems


def test_the_documented_example_is_valid():
    config = load_config(EXAMPLE)
    assert config.cameras[0].zones[0].id == "no-parking-east"
    # Relative sources resolve against the config's own folder.
    assert config.cameras[0].source == str(EXAMPLE.parent / "recordings" / "cam-001.mp4")


def test_the_example_names_every_detector_setting():
    """The README promises the example shows every key; the detector's are the ones added
    most often."""
    detector = load_config(EXAMPLE).detector
    written = yaml.safe_load(EXAMPLE.read_text())["detector"]
    assert set(written) == set(type(detector).model_fields)
    assert detector == DetectorConfig()  # the example shows the defaults
    with pytest.raises(ConfigError, match="parallel_runs"):
        parse_config(minimal() | {"detector": {"parallel_runs": 0}})


def test_partial_rule_override_keeps_the_other_defaults():
    config = parse_config({"rules": {"street_stall": {"dwell_s": 30}}} | minimal())
    assert config.rules["street_stall"].dwell_s == 30
    assert config.rules["street_stall"].clear_s == 60
    assert config.rules["illegal_parking"].dwell_s == 120


def test_sampling_defaults_and_exclusivity():
    assert parse_config(minimal()).cameras[0].sample.fps == 2.0
    assert parse_config(minimal(sample={"keyframes": True})).cameras[0].sample.fps is None
    assert problems(minimal(sample={"fps": 2, "keyframes": True})) == [
        "cameras[0].sample: Value error, set either fps or keyframes: true, not both"
    ]
    sample = parse_config(minimal()).cameras[0].sample
    assert (sample.adaptive, sample.max_interval_s) == (True, 10.0)
    assert problems(minimal(sample={"max_interval_s": 0})) == [
        "cameras[0].sample.max_interval_s: Input should be greater than 0"
    ]


def test_record_source_is_a_live_stream():
    url = "rtsp://10.0.0.7/stream1"
    assert parse_config(minimal(record_source=url)).cameras[0].record_source == url
    (problem,) = problems(minimal(record_source="main.mp4"))
    assert problem.startswith("cameras[0].record_source: String should match pattern")


def test_duplicates_unknown_keys_and_types_are_refused():
    data = minimal()
    data["cameras"].append(dict(data["cameras"][0]))
    assert "duplicate camera id 'cam-1'" in problems(data)[0]
    assert problems(minimal(zoom=2)) == ["cameras[0].zoom: Extra inputs are not permitted"]
    found = problems(minimal(start_time="2026-05-01T08:00:00"))  # no offset: ambiguous
    assert found[0].startswith("cameras[0].start_time:")
    assert problems([1, 2]) == ["(top level): expected a mapping of settings"]


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(minimal()) + "  - : [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_event_code_table_must_cover_every_type():
    table = {
        "standard": "city rules 2026",
        "codes": [{"code": "1", "type": "garbage", "name": "x"}],
    }
    assert problems(minimal() | {"event_codes": table}) == [
        "event_codes: Value error, no code for illegal_parking, street_stall"
    ]


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        ([[0, 0], [100, 0], [200, 0], [300, 0]], "the image points lie (almost) on one line"),
        ([[0, 0], [100, 0], [100, 100], [100, 100]], "two image points are the same"),
    ],
)
def test_a_degenerate_calibration_is_refused_with_its_path(points, reason):
    latlon = [(26.58, 101.72), (26.58, 101.7204), (26.5803, 101.7204), (26.5803, 101.72)]
    camera = minimal()["cameras"][0] | {
        "calibration": {
            "points": [
                {"image": p, "lat": lat, "lon": lon}
                for p, (lat, lon) in zip(points, latlon, strict=True)
            ]
        }
    }
    with pytest.raises(ConfigError) as err:
        parse_config({"cameras": [camera]})
    (problem,) = err.value.problems
    assert problem.startswith("cameras[0].calibration:") and reason in problem


def test_a_calibration_needs_four_points():
    camera = minimal()["cameras"][0] | {
        "calibration": {"points": [{"image": [0, 0], "lat": 1, "lon": 1}] * 3}
    }
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.calibration\.points"):
        parse_config({"cameras": [camera]})
