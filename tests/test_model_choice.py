"""Which model a camera runs: the config's `model`, a camera's own, or its zones' type's
(`models_by_type`, each for its types); `score` runs each camera on its models."""

from __future__ import annotations

import hashlib
import json

import yaml

from api.contract import IncidentType
from detector.engine import Engine
from detector.model_mix import ModelMix
from streams.camera.engines import Engines, labels_of
from streams.camera.evidence import EvidenceWriter
from streams.camera.model_set import ModelSet
from streams.cli import main
from streams.config import parse_config
from streams.offline.scoring import score_camera
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
            "models_by_type": {"garbage": "city-garbage", "illegal_parking": "city-parking"},
            "cameras": [
                _camera("a", "a.mp4", ["street_stall"]),
                _camera("b", "b.mp4", ["garbage"]),
                _camera("c", "c.mp4", ["garbage", "illegal_parking"], model="city-all"),
                _camera("d", "d.mp4", ["garbage", "illegal_parking", "street_stall"]),
            ],
        }
    )
    G, P, S = IncidentType.garbage, IncidentType.illegal_parking, IncidentType.street_stall
    assert [config.models_of(c) for c in config.cameras] == [
        {"default": {S}},
        {"city-garbage": {G}},
        {"city-all": {G, P}},  # a camera's own model runs alone, for every type
        {"city-garbage": {G}, "city-parking": {P}, "default": {S}},
    ]


def _copies(tmp_path):
    """Two copies of the default weights that a van can only be one type in: `parking` sees
    it as a parked vehicle, `garbage` as garbage (and a parked motorbike): a garbage case
    from the van can only come from `garbage`, a parking case only from `parking`."""
    vehicles = ["car", "bus", "truck"]
    parking = model_copy(tmp_path / "parking", "default", "parking", {"illegal_parking": vehicles})
    garbage = model_copy(
        tmp_path / "garbage",
        "default",
        "garbage",
        {"garbage": vehicles, "illegal_parking": ["motorbike"]},
    )
    return parking, garbage


class CountingEngine(Engine):
    """The real engine, keeping a fingerprint of every frame it is given."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[bytes] = []

    def submit(self, image):
        self.seen.append(hashlib.sha1(image[::8, ::8].tobytes()).digest())
        return super().submit(image)


def test_a_camera_of_two_models_gets_both_types_each_model_inferring_the_gated_frames(
    default_model, vtest_avi, tmp_path
):
    parking, garbage = _copies(tmp_path)
    config = parse_config(
        {
            "model": "default",
            "models_by_type": {"illegal_parking": str(parking), "garbage": str(garbage)},
            "detector": {"motion_gate": True},
            "rules": {t: {"dwell_s": 10, "clear_s": 4} for t in ("illegal_parking", "garbage")},
            "cameras": [
                _camera("cam", str(vtest_avi), ["illegal_parking"])
                | {
                    "zones": [
                        {"id": "bay", "polygon": VAN_ZONE, "checks": ["illegal_parking"]},
                        {"id": "heap", "polygon": VAN_ZONE, "checks": ["garbage"]},
                    ]
                }
            ],
        }
    )
    (camera,) = config.cameras
    engines = {str(m): CountingEngine(str(m)) for m in (parking, garbage)}
    runs = [(n, e, labels_of(e, config), t) for n, t in config.models_of(camera).items()
            for e in [engines[n]]]  # fmt: skip
    mix = ModelMix(runs)
    # One label space: the parking rule reads parking's vehicles, the garbage rule garbage's.
    names = mix.labels.names
    by_type = {t: {names[i] for i in s.class_ids} for t, s in mix.labels.specs.items()}
    assert by_type == {
        "illegal_parking": {"car", "bus", "truck"},
        "garbage": {"car", "bus", "truck"},
    }
    specs = mix.labels.specs
    assert not specs["illegal_parking"].class_ids & specs["garbage"].class_ids
    result = score_camera(camera, mix, config, mix.labels, EvidenceWriter(tmp_path / "ev"))
    assert result.error is None
    found = sorted({(c.type, c.zone_id) for c in result.cases})
    assert found == [("garbage", "heap"), ("illegal_parking", "bay")]
    # The gate ran once per frame: both models were given exactly the frames it let through
    # (a second look at a frame just inferred finds nothing moved, so a gate run per model
    # would have kept frames from the second).
    p, g = (engines[str(m)].seen for m in (parking, garbage))
    assert p == g and len(p) == result.frames - result.gated


def test_the_van_is_no_garbage_for_the_parking_model_alone(default_model, vtest_avi, tmp_path):
    # The control: the same camera with every type on `parking` (its own model) has no class
    # for garbage but the static stand-in, which a van passing the clip never is.
    parking, _ = _copies(tmp_path)
    config = parse_config(
        {
            "rules": {t: {"dwell_s": 10, "clear_s": 4} for t in ("illegal_parking", "garbage")},
            "cameras": [_camera("cam", str(vtest_avi), ["garbage"], model=str(parking))],
        }
    )
    models = ModelSet(config, config.cameras)
    mix = models.of(config.cameras[0])
    result = score_camera(
        config.cameras[0], mix, config, mix.labels, EvidenceWriter(tmp_path / "ev")
    )
    assert result.error is None and result.cases == []


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


def test_one_builder_keeps_an_engine_until_its_settings_change(default_model):
    """`Engines` (the one builder ModelSet, shadow, Ray and scenario counts load through):
    the same model under the same detector settings is one engine, its labels following
    each config's rules; other settings are another engine; a reload keeps what it can."""
    config = parse_config({"model": "default", "cameras": [_camera("a", "a.mp4", ["garbage"])]})
    engines = Engines()
    first = engines.get(config)
    assert engines.get(config).engine is first.engine
    slower = parse_config(
        {
            "model": "default",
            "rules": {"illegal_parking": {"dwell_s": 99, "clear_s": 5}},
            "cameras": [_camera("a", "a.mp4", ["garbage"])],
        }
    )
    again = engines.get(slower)  # other rules: the same engine, labels of those rules
    assert again.engine is first.engine
    assert again.labels.specs["illegal_parking"].params.dwell_s == 99
    assert first.labels.specs["illegal_parking"].params.dwell_s != 99
    stricter = config.model_copy(
        update={"detector": config.detector.model_copy(update={"conf_threshold": 0.5})}
    )
    other = engines.get(stricter)
    assert other.engine is not first.engine and other.engine.conf_threshold == 0.5
    engines.keep([other])  # what a new config runs: the first engine is let go
    assert engines.get(config).engine is not first.engine

    models = ModelSet(config, config.cameras)
    reloaded = ModelSet(config, config.cameras, previous=models)
    assert reloaded.loaded["default"].engine is models.loaded["default"].engine
    changed = ModelSet(stricter, stricter.cameras, previous=reloaded)
    assert changed.loaded["default"].engine is not models.loaded["default"].engine
    assert changed.loaded["default"].engine.conf_threshold == 0.5
