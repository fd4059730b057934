"""The fast path on the real default model: aspect-preserving input, motion gating, int8."""

from __future__ import annotations

import shutil
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.calibration import agreement, quantize_model
from detector.engine import Engine
from detector.motion import MotionGate, detect_stream
from detector.types import Detections, Frame
from models import registry
from models.cache import HOME_ENV, models_dir
from models.errors import ModelError
from models.quantize import quantized_manifest, register_quantized
from streams.camera.model_set import ModelSet
from streams.cli import main
from streams.config import CameraConfig, parse_config


@pytest.fixture(scope="module")
def rect_engine(default_model: Path) -> Engine:
    return Engine("default", rect=True)


def test_rect_input_fits_each_aspect_at_the_square_scale(rect_engine: Engine):
    assert rect_engine.input_for(1920, 1080) == (416, 256)
    assert rect_engine.input_for(810, 1080) == (320, 416)
    assert rect_engine.input_for(416, 416) == (416, 416)
    assert Engine("default").input_for(1920, 1080) == (416, 416)  # off unless asked


def test_rect_batch_of_mixed_aspects_matches_one_by_one(
    rect_engine: Engine, bus_jpg: Path, zidane_jpg: Path
):
    bus, zidane = cv2.imread(str(bus_jpg)), cv2.imread(str(zidane_jpg))
    images = [bus, zidane, bus]
    for image, together in zip(images, rect_engine.detect(images), strict=True):
        alone = rect_engine.detect_one(image)
        np.testing.assert_array_equal(together.class_ids, alone.class_ids)
        np.testing.assert_allclose(together.boxes, alone.boxes, atol=0.05)
    bus_id = rect_engine.class_names.index("bus")
    assert bus_id in rect_engine.detect_one(bus).class_ids


def _frame(image: np.ndarray, pts: float) -> Frame:
    return Frame("cam", round(pts * 10), pts, image)


def test_motion_gate_skips_still_frames_and_reruns_on_change(default_model: Path, bus_jpg: Path):
    """The worker's path on the real model: each batch through `ModelSet.gate`, the moved
    frames inferred in one call per model, every frame settled with its detections."""
    zones = [{"id": "z", "polygon": [[0, 0], [810, 0], [810, 1080]], "checks": ["illegal_parking"]}]
    cameras = [{"id": c, "source": f"{c}.mp4", "zones": zones} for c in ("cam", "other")]
    config = parse_config({"model": "default", "cameras": cameras})
    models = ModelSet(config, config.cameras)
    cam, other_cam = config.cameras
    calls: list[int] = []

    def detect(engine: Engine, images: list[np.ndarray]) -> list[Detections]:
        calls.append(len(images))
        return engine.detect(images)

    def judge(*batch: tuple[CameraConfig, Frame, MotionGate]) -> list[Detections]:
        gated = models.gate(batch)
        return gated.settle(gated.infer(detect))

    still = cv2.imread(str(bus_jpg))
    seen = Engine("default").detect_one(still)
    assert len(seen.boxes)
    gate = MotionGate(max_skip_s=2.0)
    for i in range(10):  # 0.0 .. 0.9 s, nothing moves: inferred once
        (dets,) = judge((cam, _frame(still, i / 10), gate))
        np.testing.assert_array_equal(dets.class_ids, seen.class_ids)  # a gated frame is seen
    assert sum(calls) == 1 and gate.skipped == 9
    moved = still.copy()
    moved[400:460, 300:340] = 255  # a 40 x 60 px object appears
    judge((cam, _frame(moved, 1.0), gate))
    assert sum(calls) == 2
    judge((cam, _frame(moved, 3.5), gate))  # max_skip_s bounds the reuse
    assert sum(calls) == 3
    # Across cameras: gated frames are left out of the one batched call.
    other = MotionGate()
    judge((cam, _frame(moved, 3.6), gate), (other_cam, _frame(still, 3.6), other))
    assert calls[-1] == 1  # only the other camera's first frame was inferred
    # One camera's frames in one batch: a frame gated behind one inferred in the same batch
    # reuses that frame's detections.
    fresh = MotionGate()
    first, again = judge((cam, _frame(moved, 5.0), fresh), (cam, _frame(moved, 5.1), fresh))
    assert calls[-1] == 1 and fresh.skipped == 1
    np.testing.assert_array_equal(again.boxes, first.boxes)


def test_detect_stream_pipelines_gates_and_keeps_order(bus_jpg: Path, zidane_jpg: Path):
    """The real model over a scripted stream: every frame comes back in order; a frame that
    moved gets its own detections, a still one those of the last inferred frame before it."""
    engine = Engine("default")
    bus, zidane = cv2.imread(str(bus_jpg)), cv2.imread(str(zidane_jpg))
    zidane = cv2.resize(zidane, (bus.shape[1], bus.shape[0]))  # same size: the gate compares
    script = [bus, bus, bus, zidane, zidane, bus, zidane, zidane, zidane]
    frames = [_frame(image, i / 10) for i, image in enumerate(script)]
    expected = {id(bus): engine.detect_one(bus), id(zidane): engine.detect_one(zidane)}
    gate = MotionGate()
    out = list(detect_stream(engine, iter(frames), gate))
    assert [f.index for f, _ in out] == [f.index for f in frames]
    assert gate.skipped == 5  # inferred: frames 0, 3, 5 and 6, where the picture changed
    for (_, dets), image in zip(out, script, strict=True):
        np.testing.assert_array_equal(dets.class_ids, expected[id(image)].class_ids)
        np.testing.assert_allclose(dets.boxes, expected[id(image)].boxes, atol=0.05)
    # Ungated with a shallow pipeline: every frame inferred; a consumer may stop early,
    # leaving at most the frames in flight started.
    submitted: list[int] = []
    real_submit = engine.submit

    def counting_submit(image: np.ndarray):
        submitted.append(1)
        return real_submit(image)

    engine.submit = counting_submit  # type: ignore[method-assign]
    assert len(list(detect_stream(engine, iter(frames), depth=2))) == len(frames)
    assert len(submitted) == len(frames)
    submitted.clear()
    ungated = detect_stream(engine, iter(frames), depth=2)
    assert [len(d) for _, d in islice(ungated, 3)] == [len(expected[id(bus)])] * 3
    ungated.close()
    assert len(submitted) <= 3 + 2
    with pytest.raises(ValueError, match="H x W x 3 uint8"):  # a failed run reaches the caller
        list(detect_stream(engine, iter([frames[0], _frame(np.zeros((9, 9), np.uint8), 1.0)])))


def test_agreement_counts_missed_and_extra_boxes():
    def dets(boxes: list[list[float]], classes: list[int]) -> Detections:
        n = len(boxes)
        return Detections(np.array(boxes, np.float32).reshape(n, 4), np.ones(n, np.float32),
                          np.array(classes, np.int32))  # fmt: skip

    ref = [dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 2])]
    assert agreement(ref, ref) == 1.0
    assert agreement(ref, [dets([[1, 1, 10, 10]], [0])]) == pytest.approx(2 / 3)
    assert agreement(ref, [dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 5])]) == 0.5
    assert agreement([Detections.empty()], [Detections.empty()]) == 1.0


@pytest.fixture
def own_home(default_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache holding only a copy of the default model, so int8 models stay out of others'."""
    shutil.copytree(default_model.parent, tmp_path / "models" / default_model.parent.name)
    shutil.copytree(default_model.parent.parent.parent / "samples", tmp_path / "samples")
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    return tmp_path


def test_quantize_registers_an_int8_child_with_its_agreement(
    own_home: Path, bus_jpg: Path, vtest_avi: Path
):
    manifest, path = quantize_model("default", "tiny-int8", force=True, frames_per_video=16)
    q = manifest.quantization
    assert q is not None and q.quantized_from == "yolov4-tiny" and "qdq" in q.method
    assert q.agreement is not None and 0.95 <= q.agreement <= 1.0  # 1.0 measured at 16 frames
    assert path == models_dir() / "tiny-int8" / "model.onnx"
    engine = Engine("tiny-int8")  # registered, sha256-verified, and it still sees the bus
    assert engine.manifest.quantization == q
    dets = engine.detect_one(cv2.imread(str(bus_jpg)))
    assert engine.class_names.index("bus") in dets.class_ids
    # Below the threshold a model is refused unless forced.
    low = quantized_manifest(manifest, path, "tiny-int8-low", agreement=0.5)
    with pytest.raises(ModelError, match="below 95%"):
        register_quantized(low, path)
    assert "tiny-int8-low" not in {m.name for m in registry.list_models()}
    register_quantized(low, path, force=True)
    assert registry.get("tiny-int8-low")[0].quantization.agreement == 0.5


def test_quantize_cli_refuses_an_existing_name(own_home: Path, capsys):
    assert main(["models", "quantize", "default", "--name", "yolov4-tiny"]) == 2
    assert "already exists" in capsys.readouterr().err
