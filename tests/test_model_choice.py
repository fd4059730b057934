"""Which model a camera runs: the config's `model`, a camera's own, or its zones' type's
(`models_by_type`); `score` runs each camera on its model."""

from __future__ import annotations

import json

import pytest
import yaml

from streams.cli import main
from streams.config import ConfigError, parse_config
from tests.model_copies import model_copy

VAN_ZONE = [[640, 40], [730, 40], [730, 105], [640, 105]]


def _camera(cam_id: str, source: str, checks: list[str], **extra) -> dict:
    zone = {"id": "z", "polygon": VAN_ZONE, "checks": checks}
    return {"id": cam_id, "source": source, "start_time": "2026-05-01T08:00:00+08:00",
            "sample": {"fps": 2}, "zones": [zone], **extra}  # fmt: skip


def test_the_camera_then_its_types_then_the_config_choose():
    config = parse_config(
        {
            "model": "default",
            "models_by_type": {"garbage": "city-garbage"},
            "cameras": [
                _camera("a", "a.mp4", ["illegal_parking"]),
                _camera("b", "b.mp4", ["garbage"]),
                _camera("c", "c.mp4", ["garbage", "illegal_parking"], model="city-all"),
            ],
        }
    )
    assert [config.model_of(c) for c in config.cameras] == ["default", "city-garbage", "city-all"]


def test_a_camera_needing_two_models_is_refused():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "models_by_type": {"garbage": "city-garbage", "illegal_parking": "city-parking"},
                "cameras": [_camera("a", "a.mp4", ["garbage", "illegal_parking"])],
            }
        )
    assert "cameras[0] (a) checks types of several models" in str(err.value)
    assert "garbage: city-garbage, illegal_parking: city-parking" in str(err.value)


def test_score_runs_each_camera_on_its_model(default_model, vtest_avi, tmp_path):
    # The same weights under another name, raising parking only for motorbikes: the van of
    # vtest.avi is not one, so the camera given that model reports nothing.
    bikes = model_copy(
        tmp_path / "bikes", "default", "bikes-only", {"illegal_parking": ["motorbike"]}
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "default",
                "rules": {"illegal_parking": {"dwell_s": 10, "clear_s": 4}},
                "cameras": [
                    _camera("cam-default", str(vtest_avi), ["illegal_parking"]),
                    _camera("cam-bikes", str(vtest_avi), ["illegal_parking"], model=str(bikes)),
                ],
            }
        )
    )
    out = tmp_path / "cases.jsonl"
    args = [
        "score",
        "--config",
        str(config),
        "--out",
        str(out),
        "--evidence-dir",
        str(tmp_path / "ev"),
    ]
    assert main(args) == 0
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["camera_id"] for c in cases] == ["cam-default"]
