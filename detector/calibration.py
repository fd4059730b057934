"""Real frames for int8 calibration, and agreement of a quantised model with its parent.

Footage is split in time: the first half of every video (and every photo) calibrates, the
second half is held out to measure agreement, so the figure is never measured on a frame
the quantiser has seen.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from detector.engine import Engine
from detector.geometry import box_iou, greedy_match
from detector.types import Detections
from models.manifest import Manifest
from models.quantize import quantize_file, quantized_manifest, register_quantized
from models.registry import MANIFEST_FILE, MODEL_FILE
from models.samples import VTEST_AVI, sample_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MATCH_IOU = 0.5


def default_footage() -> list[Path]:
    """Real street footage and photos available on this machine."""
    found = [VTEST_AVI] if VTEST_AVI.is_file() else []
    return [*found, sample_path("bus.jpg"), sample_path("zidane.jpg")]


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].frames or sum(1 for _ in container.decode(video=0))


def spread_frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` frames spread evenly over a video."""
    total = _frame_count(path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        wanted = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
        return [
            f.to_ndarray(format="bgr24")
            for i, f in enumerate(container.decode(stream))
            if i in wanted
        ]


@dataclass(slots=True)
class Footage:
    calibration: list[np.ndarray]
    holdout: list[np.ndarray]


def split_footage(paths: Sequence[Path], per_video: int = 128) -> Footage:
    """First half of each video's sampled frames calibrates; the second half is held out."""
    footage = Footage([], [])
    for path in paths:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(path))
            if image is None:
                raise ValueError(f"cannot read image {path}")
            footage.calibration.append(image)
            continue
        frames = spread_frames(path, per_video)
        footage.calibration += frames[: len(frames) // 2]
        footage.holdout += frames[len(frames) // 2 :]
    if not footage.holdout:
        raise ValueError("agreement needs at least one video to hold frames out of calibration")
    return footage


def model_inputs(engine: Engine, frames: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """Each frame letterboxed exactly as the engine feeds it (one-image batches)."""
    for frame in frames:
        tensor, _ = engine.letterbox([frame])
        yield tensor.copy()  # the letterbox buffer is reused by the next frame


def agreement(reference: Sequence[Detections], candidate: Sequence[Detections]) -> float:
    """Share of detections the two models agree on: 2 x matched / (n_ref + n_cand).

    A match is the same class with IoU >= 0.5 (greedy, best IoU first); missed and extra
    detections both count against it. 1.0 when neither model detects anything.
    """
    matched = total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        total += len(ref) + len(cand)
        if len(ref) and len(cand):
            iou = box_iou(ref.boxes, cand.boxes)
            iou[ref.class_ids[:, None] != cand.class_ids[None, :]] = 0.0
            matched += len(greedy_match(iou, MATCH_IOU))
    return 2 * matched / total if total else 1.0


def quantize_model(
    source: str,
    name: str,
    footage: Sequence[Path] | None = None,
    force: bool = False,
    frames_per_video: int = 128,
) -> tuple[Manifest, Path]:
    """Quantise a registered model to int8 on real frames and register it as `name`."""
    frames = split_footage(footage or default_footage(), frames_per_video)
    return quantize_on(source, name, frames, force)


def quantize_on(
    source: str | Path, name: str, frames: Footage, force: bool = False
) -> tuple[Manifest, Path]:
    """Quantise on `frames.calibration`, measure agreement on `frames.holdout`, register."""
    parent = Engine(source)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)  # a model directory, so the engine loads it like a registered one
        model_file = staged / MODEL_FILE
        quantize_file(parent.model_path, model_file, model_inputs(parent, frames.calibration))
        draft = quantized_manifest(parent.manifest, model_file, name)
        (staged / MANIFEST_FILE).write_text(draft.to_json(), encoding="utf-8")
        child = Engine(staged)
        score = agreement(parent.detect(frames.holdout), child.detect(frames.holdout))
        manifest = quantized_manifest(parent.manifest, model_file, name, score)
        return register_quantized(manifest, model_file, force)
